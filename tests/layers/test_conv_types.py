"""Every conv type is a drop-in for nn.Conv2d; Shuffle and FLGC equal their definitions."""
import pytest
import torch
import torch.nn.functional as F

from tglc_zoo.layers import CONV_TYPES, DeployedFLGC, FLGCConv2d, channel_shuffle, create_conv, deploy


def _groups(conv_type):
    return 1 if conv_type == "sc" else 4


@pytest.mark.parametrize("conv_type", CONV_TYPES)
@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (1, 1), (1, 2)])
def test_drop_in_shapes_and_attributes(conv_type, k, s):
    layer = create_conv(conv_type, 16, 32, k, stride=s, groups=_groups(conv_type))
    ref = torch.nn.Conv2d(16, 32, k, s, k // 2)
    x = torch.randn(2, 16, 9, 9)
    assert layer(x).shape == ref(x).shape
    assert (layer.in_channels, layer.out_channels, layer.groups) == (16, 32, _groups(conv_type))


@pytest.mark.parametrize("conv_type", CONV_TYPES)
def test_channels_last_and_autocast(conv_type):
    layer = create_conv(conv_type, 16, 32, 3, groups=_groups(conv_type))
    x = torch.randn(2, 16, 8, 8)
    y = layer(x)
    y_cl = layer.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_amp = layer(x)
    assert y_amp.dtype == torch.bfloat16
    torch.testing.assert_close(y_amp.float(), y, rtol=0.05, atol=0.05)
    y_amp.float().sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_shuffle_is_gc_then_permutation():
    layer = create_conv("shuffle", 8, 12, 3, groups=4)
    x = torch.randn(2, 8, 5, 5)
    gc_out = F.conv2d(x, layer.conv.weight, None, 1, 1, groups=4)
    perm = torch.arange(12).reshape(4, 3).t().reshape(-1)  # output channel j takes gc channel perm[j]
    torch.testing.assert_close(layer(x), gc_out[:, perm])
    torch.testing.assert_close(channel_shuffle(gc_out, 1), gc_out)


def _flgc_with_groups(in_groups, out_groups, n_groups, k=3, bias=False):
    layer = FLGCConv2d(len(in_groups), len(out_groups), k, groups=n_groups, bias=bias)
    with torch.no_grad():
        layer.in_assign.copy_(F.one_hot(torch.tensor(in_groups), n_groups).float() * 5)
        layer.out_assign.copy_(F.one_hot(torch.tensor(out_groups), n_groups).float() * 5)
    return layer


def test_flgc_mask_is_group_connectivity_and_gradient_reaches_logits():
    layer = _flgc_with_groups([0, 1, 1, 0], [1, 0, 0, 0], 2)
    expected = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1], [1, 0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(layer.mask().detach(), expected)
    layer(torch.randn(2, 4, 5, 5)).square().sum().backward()
    assert layer.in_assign.grad.abs().sum() > 0 and layer.out_assign.grad.abs().sum() > 0


@pytest.mark.parametrize("in_groups,out_groups,n_groups,bias", [
    ([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3] * 2, 4, False),          # balanced, permuted
    ([2, 0, 0, 1, 0, 2, 1, 0], [1, 1, 0, 2, 2, 2, 1, 0, 0, 1, 1, 1], 4, True),  # uneven, group 3 empty
    ([0, 0, 0, 0], [1, 1, 0, 1], 2, True),                             # a group that sees no input
])
def test_flgc_deployed_equals_training_form(in_groups, out_groups, n_groups, bias):
    layer = _flgc_with_groups(in_groups, out_groups, n_groups, bias=bias)
    deployed = deploy(layer)
    assert isinstance(deployed, DeployedFLGC)
    x = torch.randn(3, len(in_groups), 7, 7)
    torch.testing.assert_close(deployed(x), layer(x), rtol=1e-5, atol=1e-5)


def test_flgc_deploy_balanced_is_one_grouped_conv_with_gc_count():
    layer = create_conv("flgc", 16, 32, 3, groups=4)  # starts at GC's contiguous assignment
    deployed = deploy(layer)
    assert deployed.balanced and len(deployed.convs) == 1 and deployed.convs[0].groups == 4
    gc = create_conv("gc", 16, 32, 3, groups=4)
    assert sum(p.numel() for p in deployed.parameters()) == sum(p.numel() for p in gc.parameters())
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(deployed(x), layer(x), rtol=1e-5, atol=1e-5)


def test_deploy_model_copy_leaves_original():
    model = torch.nn.Sequential(create_conv("flgc", 8, 8, 3, groups=2), torch.nn.ReLU(),
                                create_conv("flgc", 8, 16, 1, groups=2))
    deployed = deploy(model)
    assert isinstance(model[0], FLGCConv2d) and isinstance(deployed[0], DeployedFLGC)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(deployed(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(conv_type="gc3", in_channels=8, out_channels=8, kernel_size=3), r"'gc3'.*did you mean 'gc'.*valid choices"),
    (dict(conv_type="gc", in_channels=8, out_channels=12, kernel_size=3, groups=3),
     r"groups=3.*in_channels=8.*valid groups"),
    (dict(conv_type="gc2l", in_channels=8, out_channels=8, kernel_size=3, groups=0), r"groups must be a positive"),
    (dict(conv_type="sc", in_channels=8, out_channels=8, kernel_size=3, groups=2), r"needs groups=1"),
    (dict(conv_type="gc", in_channels=0, out_channels=8, kernel_size=3), r"in_channels must be a positive"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_conv(**kwargs)
