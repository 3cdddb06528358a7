"""Every GC-2L implementation computes eq. (3.5) exactly, under autocast and torch.compile too."""
import json

import pytest
import torch
from gc2l_reference import reference

from tglc_zoo.layers import TwoLevelGroupConv2d, gc2l_impl
from tglc_zoo.layers.gc2l_impl import KERNEL_IMPLS, ShapeKey, choose_impl, load_table

CASES = [  # n, m, N, kernel, stride
    (8, 8, 2, 3, 1), (8, 16, 4, 3, 2), (12, 6, 3, 1, 1), (16, 32, 16, 3, 1), (6, 12, 1, 3, 2), (16, 8, 8, 1, 2),
]
ALL = ("auto", *KERNEL_IMPLS)


@pytest.mark.parametrize("n,m,N,k,s", CASES)
@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_equals_formula_with_gradients(n, m, N, k, s, impl, channels_last, bias):
    layer = TwoLevelGroupConv2d(n, m, k, stride=s, groups=N, bias=bias, impl=impl).double()
    x = torch.randn(3, n, 9, 9, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = layer(x)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *layer.parameters()], g)
    y_ref = reference(layer, x)
    grads_ref = torch.autograd.grad(y_ref, [x, *layer.parameters()], g)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    with torch.no_grad():  # the in-place inference path
        torch.testing.assert_close(layer(x), y_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("impl", ALL)
def test_same_parameters_for_every_impl(impl):
    ref = TwoLevelGroupConv2d(16, 32, 3, groups=4, impl="split")
    layer = TwoLevelGroupConv2d(16, 32, 3, groups=4, impl=impl)
    assert {k: v.shape for k, v in layer.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(layer(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("channels_last", [False, True])
def test_autocast_bf16(impl, channels_last):
    layer = TwoLevelGroupConv2d(16, 32, 3, groups=4, impl=impl)
    x = torch.randn(2, 16, 8, 8)
    if channels_last:
        layer, x = layer.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_amp = layer(x)
        with torch.no_grad():
            y_amp_inf = layer(x)
    assert y_amp.dtype == y_amp_inf.dtype == torch.bfloat16
    scale = y.abs().max().item()
    torch.testing.assert_close(y_amp.float(), y, rtol=0, atol=0.03 * scale)
    torch.testing.assert_close(y_amp_inf.float(), y, rtol=0, atol=0.03 * scale)
    y_amp.float().square().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in layer.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("impl", ALL)
def test_torch_compile_matches_eager(impl):
    torch._dynamo.reset()  # every impl compiles the same forward: start each from an empty cache
    layer = TwoLevelGroupConv2d(8, 16, 3, stride=2, groups=4, impl=impl)
    compiled = torch.compile(layer, backend="inductor", fullgraph=True)
    x = torch.randn(2, 8, 9, 9).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y, y_c = layer(x), compiled(x)
    torch.testing.assert_close(y_c, y, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *layer.parameters()], g)
    grads_c = torch.autograd.grad(y_c, [x, *layer.parameters()], g)
    for a, b in zip(grads_c, grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), y, rtol=1e-4, atol=1e-4)


def test_committed_table_is_valid():
    rows = load_table()
    assert rows, "tglc_zoo/layers/gc2l_impl_table.json has no measured rows"
    assert all(impl in KERNEL_IMPLS for _, impl in rows)


def test_auto_takes_nearest_measured_shape(tmp_path, monkeypatch):
    row = dict(device="cpu", channels_last=True, training=True, kernel_size=3, stride=1, groups=4)
    table = {"rows": [dict(row, in_channels=160, out_channels=160, hw=1024, impl="fused"),
                      dict(row, in_channels=640, out_channels=640, hw=64, impl="dense")]}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    monkeypatch.setattr(gc2l_impl, "TABLE_PATH", path)
    load_table.cache_clear()
    choose_impl.cache_clear()
    try:
        key = dict(device="cpu", channels_last=True, training=True, kernel_size=3, stride=1, groups=4)
        assert choose_impl(ShapeKey(**key, in_channels=128, out_channels=128, hw=900)) == "fused"
        assert choose_impl(ShapeKey(**key, in_channels=512, out_channels=640, hw=64)) == "dense"
        assert choose_impl(ShapeKey(**dict(key, groups=8), in_channels=160, out_channels=160, hw=1024)) \
            == gc2l_impl.FALLBACK
        layer = TwoLevelGroupConv2d(160, 160, 3, groups=4).to(memory_format=torch.channels_last)
        x = torch.randn(1, 160, 32, 32).contiguous(memory_format=torch.channels_last)
        assert layer.resolve_impl(x) == "fused"
    finally:
        load_table.cache_clear()
        choose_impl.cache_clear()
