"""Surgery on any nn.Module: which convolutions are replaced and why the others are kept, geometry kept,
exactness at N = 1, copied tensors, the report (parameters, FLOPs), and the one-line ``create_grouped``."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from convert_helpers import images, randomize
from torch import nn

from tglc_zoo.convert import ConversionError, choose_convs, create_grouped, fit_conv, to_grouped
from tglc_zoo.layers import GroupConv2d, TwoLevelGroupConv2d
from tglc_zoo.layers.flops import model_flops


class _Odd(nn.Module):
    """Every kind of convolution the rules must tell apart."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 8, 3, padding=1)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=True)
        self.rect = nn.Conv2d(8, 16, (1, 3), stride=(1, 2), padding=(0, 1))
        self.same = nn.Conv2d(16, 16, 3, padding="same")
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = nn.Conv2d(16, 16, 1, groups=2)
        self.reflect = nn.Conv2d(16, 16, 3, padding=1, padding_mode="reflect")
        self.odd = nn.Conv2d(16, 6, 1)
        self.ws = timm.layers.StdConv2d(6, 8, 1)  # weight standardisation: its own forward
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.same(self.rect(self.dilated(self.stem(x))))
        x = self.ws(self.odd(self.reflect(self.grouped(self.depthwise(x)))))
        return self.head(x.mean((2, 3)))


def test_choose_convs_says_why_each_conv_is_kept():
    reasons = {c.name: (c.replace, c.reason) for c in choose_convs(_Odd(), 4)}
    assert reasons["stem"] == (False, "the stem (it reads the input image; keep_stem=False replaces it too)")
    assert reasons["dilated"][0] and reasons["rect"][0] and reasons["same"][0]
    assert reasons["depthwise"] == (False, "depthwise (groups=16); only dense convolutions (groups=1) are replaced")
    assert reasons["grouped"][1].startswith("grouped (groups=2)")
    assert reasons["reflect"][1] == "padding_mode='reflect'; only zero padding is supported"
    assert reasons["odd"][1] == "N=4 does not divide 16->6 channels"
    assert reasons["ws"][1].startswith("StdConv2d has its own forward")
    assert next(c for c in choose_convs(_Odd(), 4, keep_stem=False) if c.name == "stem").replace
    only = {c.name: c.reason for c in choose_convs(_Odd(), 4, include=["r*", "same"], exclude="rect")}
    assert only["dilated"] == "not matched by include=['r*', 'same']" and only["rect"] == "excluded by pattern 'rect'"
    assert [c.name for c in choose_convs(_Odd(), 4, include=["r*", "same"], exclude="rect") if c.replace] == ["same"]


@pytest.mark.parametrize("conv_type", ["gc", "gc2l"])
def test_geometry_kept_and_groups_1_exact(conv_type):
    src = randomize(_Odd())
    x = images(chans=4, size=10)
    for kwargs in (dict(method="block_jacobi"), dict(method="optimal"), dict(calibration_data=images(8, 10, 3, 4))):
        conv = to_grouped(src, conv_type, 1, keep_stem=False, **kwargs)
        with torch.no_grad():
            torch.testing.assert_close(conv(x), src(x), rtol=1e-5, atol=1e-5)
    conv = to_grouped(src, conv_type, 4)
    layer_cls = TwoLevelGroupConv2d if conv_type == "gc2l" else GroupConv2d
    for name in ("dilated", "rect", "same"):
        new, old = conv.get_submodule(name), src.get_submodule(name)
        assert isinstance(new, layer_cls)
        ref = new.conv if isinstance(new, TwoLevelGroupConv2d) else new
        assert (ref.kernel_size, ref.stride, ref.dilation) == (old.kernel_size, old.stride, old.dilation)
        assert ref.padding == ((1, 1) if name == "same" else old.padding)
        assert (ref.bias is None) == (old.bias is None)
    assert torch.equal(conv.dilated.conv.bias if conv_type == "gc2l" else conv.dilated.bias, src.dilated.bias)
    with torch.no_grad():
        assert conv(x).shape == src(x).shape


def test_timm_resnet_report_and_copied_tensors():
    src = randomize(timm.create_model("resnet10t", num_classes=5, in_chans=1))
    conv = to_grouped(src, "gc2l", 4, input_size=(1, 32, 32))
    rep = conv.conversion_report
    replaced = {n for n, m in conv.named_modules() if isinstance(m, TwoLevelGroupConv2d)}
    assert {r.name for r in rep} == replaced and len(rep) == len(replaced)
    assert [(s.name, s.reason.split(" (")[0]) for s in rep.skipped] == [("conv1.0", "the stem")]
    assert rep.params_before == sum(p.numel() for p in src.parameters())
    assert rep.params_after == sum(p.numel() for p in conv.parameters()) < rep.params_before
    assert rep.flops_before == model_flops(src, (1, 1, 32, 32)) and rep.flops_after == model_flops(conv, (1, 1, 32, 32))
    assert rep.flops_after < rep.flops_before
    assert all(r.relative_error < r.relative_block_jacobi_error for r in rep)  # random dense layers: strictly
    sd, src_sd = conv.state_dict(), src.state_dict()
    copied = [k for k in sd if not k.startswith(tuple(f"{n}." for n in replaced))]
    assert "conv1.0.weight" in copied and "fc.weight" in copied and any("running_var" in k for k in copied)
    assert all(torch.equal(sd[k], src_sd[k]) for k in copied)
    for r in rep:  # the loaded layer is the fit of the source kernel
        fit = fit_conv(src.get_submodule(r.name).weight.detach(), 4, "gc2l", "optimal")
        assert torch.equal(conv.get_submodule(r.name).conv.weight, fit.agp)
    assert conv.pretrained_cfg["architecture"] == "tglc_grouped" and conv.model_args["base"] == "resnet10t"
    assert conv.model_args["base_args"] == {"num_classes": 5, "in_chans": 1}
    assert conv.pretrained_cfg["mean"] == src.pretrained_cfg["mean"] and "url" not in conv.pretrained_cfg
    assert timm.data.resolve_data_config(model=conv)["mean"] == timm.data.resolve_data_config(model=src)["mean"]
    assert "replaced layer1.0.conv1: gc2l" in rep.summary() and "kept     conv1.0" in rep.summary()
    assert rep.to_dict()["skipped"][0]["name"] == "conv1.0"


def test_calibrated_fit_and_batchnorm_reestimation():
    src = randomize(timm.create_model("resnet10t", num_classes=5, in_chans=1))
    data = images(batch=8, size=16)
    small = dict(include=["conv1.*", "layer1.*"], input_size=(1, 16, 16), max_iter=2)  # patches of <= 576 values
    conv = to_grouped(src, "gc2l", 2, calibration_data=data, recalibrate_bn=True, **small)
    rep = conv.conversion_report
    assert rep.calibrated and rep.batchnorm_recalibrated and len(rep) == 4 and all(r.calibrated for r in rep)
    assert all(r.relative_error <= r.relative_block_jacobi_error for r in rep)
    plain = to_grouped(src, "gc2l", 2, calibration_data=data, **small)
    assert not torch.equal(conv.bn1.running_mean, plain.bn1.running_mean)  # re-estimated on the data
    with pytest.raises(ValueError, match="recalibrate_bn=True re-estimates BatchNorm on calibration_data"):
        to_grouped(src, "gc2l", 2, recalibrate_bn=True)


def test_torchvision_mobilenet_keeps_depthwise_and_converts_the_rest():
    src = randomize(torchvision.models.mobilenet_v2(num_classes=4))
    conv = to_grouped(src, "gc2l", 8, method="block_jacobi", input_size=(3, 32, 32))
    kept = {s.name: s.reason for s in conv.conversion_report.skipped}
    assert kept["features.0.0"].startswith("the stem")
    assert sum(r.startswith("depthwise") for r in kept.values()) == 17
    assert len(conv.conversion_report) == 34 and conv.model_args["base"] == "torchvision:mobilenet_v2"


def test_create_grouped_from_names_objects_and_dense_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = create_grouped("resnet10t", conv_type="gc", groups=2, num_classes=3, in_chans=1, input_size=(1, 16, 16))
    assert isinstance(model.layer1[0].conv1, GroupConv2d) and model.model_args["base_args"] == {"num_classes": 3,
                                                                                                "in_chans": 1}
    tv = create_grouped("torchvision:resnet18", groups=4, num_classes=3, method="block_jacobi", input_size=(3, 32, 32))
    assert tv.model_args["base"] == "torchvision:resnet18" and isinstance(tv.layer4[1].conv2, TwoLevelGroupConv2d)
    # dense weights given as a file: converted with N = 1 the model computes exactly what they compute
    dense = randomize(timm.create_model("resnet10t", num_classes=3, in_chans=1))
    save_file(dense.state_dict(), str(tmp_path / "dense.safetensors"))
    exact = create_grouped("resnet10t", pretrained=tmp_path / "dense.safetensors", groups=1, num_classes=3, in_chans=1,
                           input_size=(1, 16, 16))
    x = images(size=16)
    with torch.no_grad():
        torch.testing.assert_close(exact.eval()(x), dense(x), rtol=1e-5, atol=1e-5)
    same = create_grouped(dense, groups=1, input_size=(1, 16, 16))
    assert same.model_args["base"] == "resnet10t"  # recognised from the timm object
    with pytest.raises(ConversionError, match="converts the object as it is"):
        create_grouped(dense, num_classes=3)


def test_nothing_to_convert_is_an_error_listing_why():
    with pytest.raises(ConversionError, match=r"nothing to convert in Sequential with N=2: 0: the stem"):
        to_grouped(nn.Sequential(nn.Conv2d(4, 4, 3)), "gc2l", 2)
