"""Conversion keeps what a model means — one module under two names, tied weights, frozen parameters, modes —
or refuses with a reason; non-finite weights or images and meta tensors are refused by name."""
from __future__ import annotations

import pytest
import torch
from convert_helpers import images, randomize
from torch import nn

import tglc_zoo
from tglc_zoo.convert import ConversionError, fit_conv, input_moments, recalibrate_batchnorm, to_grouped
from tglc_zoo.layers import TwoLevelGroupConv2d


class _Net(nn.Module):
    """stem → a → b → BN → head; ``share`` makes ``b`` the module ``a`` ("module") or ties its weight ("weight")."""

    def __init__(self, share: str = "") -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1, bias=True)
        self.b = self.a if share == "module" else nn.Conv2d(8, 8, 3, padding=1, bias=True)
        if share == "weight":
            self.b.weight = self.a.weight
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.b(torch.relu(self.a(self.stem(x))))).mean((2, 3)))


def _params(layer: TwoLevelGroupConv2d) -> list[nn.Parameter]:
    return [layer.conv.weight, layer.restrict.weight, layer.coarse.weight]


def test_one_module_under_two_names_is_replaced_under_both():
    src = randomize(_Net("module"))
    conv = to_grouped(src, "gc2l", 2)
    assert isinstance(conv.a, TwoLevelGroupConv2d) and conv.b is conv.a
    (rep,) = conv.conversion_report.layers
    assert (rep.name, rep.aliases, rep.tied) == ("a", ("b",), ())
    assert "replaced a (also b): gc2l" in conv.conversion_report.summary()
    x = images(size=8, chans=2)
    with torch.no_grad():  # N = 1 is exact only if both uses of the module are the converted one
        torch.testing.assert_close(to_grouped(src, "gc2l", 1)(x), src(x), rtol=1e-5, atol=1e-5)
    assert to_grouped(src, "gc2l", 2, include="b").b is not src.a  # a pattern matching any of its names applies
    kept = to_grouped(src, "gc2l", 2, exclude="b", keep_stem=False)
    assert kept.a is kept.b and type(kept.a) is nn.Conv2d
    assert [(s.name, s.aliases, s.reason) for s in kept.conversion_report.skipped] == [
        ("a", ("b",), "excluded by pattern 'b'")]


def test_tied_weights_stay_tied_and_are_fitted_once_to_both_layers():
    src = randomize(_Net("weight"))
    data = images(batch=6, size=8, seed=2, chans=2)
    conv = to_grouped(src, "gc2l", 2, calibration_data=data, max_iter=3)
    assert all(p is q for p, q in zip(_params(conv.a), _params(conv.b)))
    assert conv.a.conv.bias is not conv.b.conv.bias and torch.equal(conv.b.conv.bias, src.b.bias)  # not tied
    assert [(r.name, r.tied) for r in conv.conversion_report] == [("a", ("b",)), ("b", ("a",))]
    moments = input_moments(src, {"a": src.a, "b": src.b}, data)
    joint = fit_conv(src.a.weight.detach(), 2, "gc2l", "optimal", (moments["a"] + moments["b"]) / 2, max_iter=3)
    torch.testing.assert_close(conv.a.conv.weight, joint.agp, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(conv.b.restrict.weight, joint.restrict, rtol=1e-6, atol=1e-7)
    x = images(size=8, chans=2)
    with torch.no_grad():
        torch.testing.assert_close(to_grouped(src, "gc", 1)(x), src(x), rtol=1e-5, atol=1e-5)


def test_a_tie_with_a_tensor_that_stays_dense_is_refused_with_the_reason():
    src = randomize(_Net("weight"))
    conv = to_grouped(src, "gc2l", 2, exclude="b", keep_stem=False)
    assert type(conv.a) is nn.Conv2d and conv.a.weight is conv.b.weight  # both kept, still tied
    reasons = {s.name: s.reason for s in conv.conversion_report.skipped}
    assert reasons["a"] == ("its weight is one Parameter with 'b.weight', which is not replaced the same way; "
                            "replacing it would untie them")
    assert [r.name for r in conv.conversion_report] == ["stem"]


def test_a_zoo_model_with_shared_weights_is_refused_or_converted_by_surgery():
    src = randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))
    src.stages[0][1].conv2.weight = src.stages[0][0].conv2.weight
    with pytest.raises(ConversionError, match=r"'wrn16_2_gc2l_n2' shares no module or weight, but in the source "
                                              r"\['stages.0.0.conv2.weight', 'stages.0.1.conv2.weight'\] are one "
                                              r"Parameter; convert by surgery.*include='\*'"):
        to_grouped(src, "gc2l", 2)
    conv = to_grouped(src, "gc2l", 2, include="*")
    assert all(p is q for p, q in zip(_params(conv.stages[0][0].conv2), _params(conv.stages[0][1].conv2)))


def test_frozen_parameters_and_module_modes_are_kept():
    src = randomize(_Net()).train()
    src.a.requires_grad_(False)
    src.b.bias.requires_grad_(False)
    src.bn.eval()  # a frozen BatchNorm inside a training model
    conv = to_grouped(src, "gc2l", 2)
    assert [p.requires_grad for p in (*_params(conv.a), conv.a.conv.bias)] == [False] * 4
    assert [p.requires_grad for p in (*_params(conv.b), conv.b.conv.bias)] == [True, True, True, False]
    assert conv.training and not conv.bn.training and conv.a.training
    assert src.training and not src.bn.training  # the source keeps its modes too
    zoo = randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1)).train()
    zoo.stages[0][0].conv1.requires_grad_(False)
    zoo.stem.requires_grad_(False)
    zoo.stages[1][0].bn1.eval()
    out = to_grouped(zoo, "gc2l", 2)  # the zoo route builds a fresh model: the flags are copied onto it
    assert out.pretrained_cfg["architecture"] == "wrn16_2_gc2l_n2"
    frozen = sorted(n for n, p in out.named_parameters() if not p.requires_grad)
    stem = [f"stem.{n}" for n, _ in zoo.stem.named_parameters()]
    assert stem and frozen == sorted(["stages.0.0.conv1.coarse.weight", "stages.0.0.conv1.conv.weight",
                                      "stages.0.0.conv1.restrict.weight", *stem])
    assert out.training and not out.stages[1][0].bn1.training and out.stages[1][0].bn2.training


def test_non_finite_calibration_images_and_weights_are_refused_by_name():
    src = randomize(_Net())
    bad = images(batch=8, size=8, chans=2)
    bad[5, 0, 1, 2] = float("nan")
    with pytest.raises(ConversionError, match=r"calibration batch 1 \(shape \(4, 2, 8, 8\)\) holds 1 non-finite"):
        to_grouped(src, "gc2l", 2, calibration_data=bad, calibration_batch_size=4)
    inf = images(batch=2, size=8, chans=2)
    inf[1, 1, 0, :3] = float("inf")
    with pytest.raises(ConversionError, match=r"calibration batch 0 .* holds 3 non-finite"):
        to_grouped(src, "gc2l", 2, calibration_data=[(inf, torch.zeros(2))])  # (images, labels) pairs
    overflow = randomize(_Net())
    with torch.no_grad():
        overflow.stem.weight.fill_(1e30)  # finite images, but the inputs of a and b overflow
    with pytest.raises(ConversionError, match=r"the inputs of layers \['a', 'b'\] are not finite"):
        to_grouped(overflow, "gc2l", 2, calibration_data=images(size=8, chans=2))
    with torch.no_grad():
        src.b.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ConversionError, match=r"layer 'b': its dense kernel holds 1 non-finite values"):
        to_grouped(src, "gc2l", 2)


def test_recalibrate_batchnorm_never_writes_non_finite_statistics():
    model = randomize(_Net())
    before = {k: v.clone() for k, v in model.bn.state_dict().items()}
    bad = images(batch=8, size=8, chans=2)
    bad[6, 0, 0, 0] = float("nan")
    with pytest.raises(ConversionError, match=r"calibration batch 1 .* holds 1 non-finite"):
        recalibrate_batchnorm(model, bad, batch_size=4)  # batch 0 was already averaged in: it is undone
    assert all(torch.equal(before[k], v) for k, v in model.bn.state_dict().items())
    assert model.bn.momentum == 0.1 and not model.training
    with torch.no_grad():
        model.stem.weight.fill_(1e30)
    with pytest.raises(ConversionError, match=r"statistics of \['bn'\] are not finite.*previous statistics are kept"):
        recalibrate_batchnorm(model, images(size=8, chans=2))
    assert all(torch.equal(before[k], v) for k, v in model.bn.state_dict().items())
    with pytest.raises(ConversionError, match="calibration batch 1"):
        to_grouped(randomize(_Net()), "gc2l", 2, recalibrate_bn=bad, calibration_batch_size=4)


def test_calibration_from_a_generator_also_serves_batchnorm():
    src = randomize(_Net())
    batches = (images(batch=2, size=8, seed=s, chans=2) for s in range(3))
    conv = to_grouped(src, "gc2l", 2, calibration_data=batches, recalibrate_bn=True, max_iter=1)
    assert conv.conversion_report.calibrated and conv.conversion_report.batchnorm_recalibrated


def test_a_meta_device_model_is_refused():
    with torch.device("meta"):
        src = _Net()
    with pytest.raises(ConversionError, match=r"'stem.weight' of the source _Net is on the meta device.*to_empty"):
        to_grouped(src, "gc2l", 2)
