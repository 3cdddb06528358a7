"""Every conv type takes nn.Conv2d's geometry: dilation, rectangular kernels, explicit padding, bias."""
import pytest
import torch
import torch.nn.functional as F

from tglc_zoo.layers import channel_shuffle, create_conv, deploy
from tglc_zoo.layers.flops import layer_flops
from tglc_zoo.layers.two_level_conv import IMPLS

GEOMETRIES = [dict(kernel_size=3, dilation=2), dict(kernel_size=(1, 3), padding=(0, 1)),
              dict(kernel_size=3, stride=2, dilation=(2, 1), padding=(2, 1))]


@pytest.mark.parametrize("geo", GEOMETRIES)
@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "auto"])
def test_gc2l_with_any_geometry_equals_its_composite_dense_kernel(geo, impl):
    torch.manual_seed(0)
    layer = create_conv("gc2l", 8, 12, groups=4, bias=True, impl=impl, **geo).double()
    x = torch.randn(2, 8, 11, 9, dtype=torch.float64)
    ref = F.conv2d(x, layer.composite_weight(), layer.conv.bias, layer.stride, layer.padding, layer.dilation)
    torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-10)
    assert layer_flops(layer, x.shape) > 0 and layer(x).shape == ref.shape


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_gc_shuffle_flgc_keep_the_geometry(geo):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 11, 9)
    gc = create_conv("gc", 8, 12, groups=4, bias=True, **geo)
    ref = torch.nn.Conv2d(8, 12, groups=4, bias=True, **{**geo, "padding": gc.padding})  # ours default to "same"
    gc.load_state_dict(ref.state_dict())
    torch.testing.assert_close(gc(x), ref(x))
    shuffle = create_conv("shuffle", 8, 12, groups=4, bias=True, **geo)
    shuffle.conv.load_state_dict(ref.state_dict())
    torch.testing.assert_close(shuffle(x), channel_shuffle(ref(x), 4))
    flgc = create_conv("flgc", 8, 12, groups=4, bias=True, **geo).eval()
    torch.testing.assert_close(deploy(flgc)(x), flgc(x), rtol=1e-5, atol=1e-5)
    assert flgc(x).shape == ref(x).shape


def test_default_padding_keeps_size_with_dilation():
    layer = create_conv("gc2l", 8, 8, 3, groups=2, dilation=3)
    assert layer.padding == (3, 3) and layer(torch.randn(1, 8, 10, 10)).shape[-2:] == (10, 10)


def test_bad_geometry_names_the_argument():
    with pytest.raises(ValueError, match=r"dilation must be an int or a pair of ints, got 'x'"):
        create_conv("flgc", 8, 8, 3, groups=2, dilation="x")
