"""GC-2L is its definition: A2L = R̄0ᵀ R0 + Agp (eq. 3.5)."""
import pytest
import torch
from gc2l_reference import reference

from tglc_zoo.layers import TwoLevelGroupConv2d, create_conv

CASES = [  # n, m, N, kernel, stride
    (8, 8, 2, 3, 1), (8, 16, 4, 3, 2), (12, 6, 3, 1, 1), (16, 32, 16, 3, 1), (6, 12, 1, 3, 2), (16, 8, 8, 1, 2),
    (8, 8, 4, 5, 1),
]


@pytest.mark.parametrize("n,m,N,k,s", CASES)
@pytest.mark.parametrize("impl", ["split", "fused"])
def test_matches_formula_outputs_and_gradients(n, m, N, k, s, impl):
    layer = TwoLevelGroupConv2d(n, m, k, stride=s, groups=N, impl=impl).double()
    x = torch.randn(2, n, 9, 9, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    assert y.shape == (2, m, (9 + 2 * (k // 2) - k) // s + 1, (9 + 2 * (k // 2) - k) // s + 1)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *layer.parameters()], g)
    y_ref = reference(layer, x)
    grads_ref = torch.autograd.grad(y_ref, [x, *layer.parameters()], g)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_coarse_path_is_live_and_extra_params():
    n, m, N, d = 16, 32, 4, 3
    layer = TwoLevelGroupConv2d(n, m, d, groups=N)
    assert layer.coarse.weight.abs().sum() > 0 and layer.restrict.weight.abs().sum() > 0
    gc = create_conv("gc", n, m, d, groups=N)
    extra = sum(p.numel() for p in layer.parameters()) - sum(p.numel() for p in gc.parameters())
    assert extra == d * d * n + N * m


@pytest.mark.parametrize("bias", [False, True])
def test_split_equals_fused(bias):
    split = TwoLevelGroupConv2d(24, 48, 3, stride=2, groups=8, bias=bias, impl="split")
    fused = TwoLevelGroupConv2d(24, 48, 3, stride=2, groups=8, bias=bias, impl="fused")
    fused.load_state_dict(split.state_dict())
    x = torch.randn(3, 24, 10, 10, requires_grad=True)
    ys, yf = split(x), fused(x)
    torch.testing.assert_close(ys, yf, rtol=1e-5, atol=1e-5)
    gs = torch.autograd.grad(ys.sum(), [x, *split.parameters()])
    gf = torch.autograd.grad(yf.sum(), [x, *fused.parameters()])
    for a, b in zip(gs, gf):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fused_weight_layout():
    layer = TwoLevelGroupConv2d(8, 12, 3, groups=4)
    w = layer.fused_weight()
    assert w.shape == (12 + 4, 2, 3, 3)
    # group k: its 3 filters, then its representative
    torch.testing.assert_close(w[4:7], layer.conv.weight[3:6])
    torch.testing.assert_close(w[7], layer.restrict.weight[1])


def test_unknown_impl():
    with pytest.raises(ValueError, match="'fast'.*split.*fused"):
        TwoLevelGroupConv2d(8, 8, 3, groups=2, impl="fast")
