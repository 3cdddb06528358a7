"""Feature backbones: ``features_only`` through each of timm's feature extractors, ``forward_intermediates``,
``prune_intermediate_layers``, ``output_stride``, and a GC-2L backbone under torchvision's FPN.

The checks of timm's ``test_model_forward_features``, ``_intermediates`` and ``_intermediates_features``,
with exact values where timm checks shapes: every extractor returns the very tensors
``forward_intermediates`` computes, and those are the ones the model's own forward runs through.
"""
import math
from collections import OrderedDict

import pytest
import timm
import torch
from torchvision.ops import FeaturePyramidNetwork

import tglc_zoo

# one model per family and conv type (N = 2); the ImageNet WideResNet layout is in the FPN and stride tests
REPRESENTATIVE = ["wrn16_2", "wrn16_2_gc_n2", "wrn16_2_gc2l_n2", "wrn16_2_shuffle_n2", "wrn16_2_flgc_n2",
                  "mobilenetv2", "mobilenetv2_gc2l_n2", "mobilenetv2_shuffle_n2", "mobilenetv2_flgc_n2"]
EXTRACTED = ["wrn16_2_gc2l_n2", "wrn16_2_flgc_n2", "mobilenetv2_shuffle_n2"]
LEVELS = {"cifar": ([1, 1, 2, 4], ["stem", "stages.0", "stages.1", "stages.2"]),
          "imagenet": ([4, 4, 8, 16, 32], ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]),
          "mobilenetv2": ([2, 4, 8, 16, 32], ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"])}


def _input(model, batch=2, size=None):
    cfg = model.pretrained_cfg
    size = size or 32
    return torch.randn(batch, cfg["input_size"][0], size, size)


def _kind(model):
    return getattr(model, "layout", "mobilenetv2")


def _reference_levels(model, x):
    """The output of every feature level, taken from the model's own forward by forward hooks."""
    seen = {}
    handles = [model.get_submodule(f["module"]).register_forward_hook(
        lambda m, i, o, key=f["module"]: seen.__setitem__(key, o.clone())) for f in model.feature_info]
    with torch.no_grad():
        out = model.forward_features(x)
    for h in handles:
        h.remove()
    return [seen[f["module"]] for f in model.feature_info], out


@pytest.mark.parametrize("name", [*REPRESENTATIVE, "wrn16_4_gc2l_n16", "mobilenetv2_shuffle_n8"])
def test_feature_info_describes_every_level(name):
    """Levels, channels and reductions as documented, and the shapes the model's forward makes."""
    model = tglc_zoo.create_model(name).eval()
    reductions, modules = LEVELS[_kind(model)]
    assert [f["module"] for f in model.feature_info] == modules
    assert [f["reduction"] for f in model.feature_info] == reductions
    x = _input(model)
    levels, _ = _reference_levels(model, x)
    for info, feat in zip(model.feature_info, levels):
        assert feat.shape == (2, info["num_chs"], math.ceil(x.shape[-2] / info["reduction"]),
                              math.ceil(x.shape[-1] / info["reduction"]))


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_forward_intermediates_are_the_forward_pass(name):
    model = tglc_zoo.create_model(name).eval()
    x = _input(model)
    levels, feats = _reference_levels(model, x)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        assert torch.equal(final, feats) and len(inter) == len(levels)
        assert all(torch.equal(a, b) for a, b in zip(inter, levels))
        # timm's index forms: last n, explicit (negative from the end), stop early, intermediates only
        n = len(levels)
        assert all(torch.equal(a, b) for a, b in zip(model.forward_intermediates(x, indices=2)[1], levels[-2:]))
        only = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        assert torch.equal(only[0], levels[0]) and torch.equal(only[1], levels[-1])
        early, inter = model.forward_intermediates(x, indices=[1], stop_early=True)
        assert torch.equal(early, levels[1]) and torch.equal(inter[0], levels[1])
        normed = model.forward_intermediates(x, indices=[n - 1], norm=True, intermediates_only=True)[0]
        assert torch.equal(normed, model.final_norm(levels[-1]))
        with pytest.raises(ValueError, match=rf"feature index {n} is out of range; valid: -{n} to {n - 1}"):
            model.forward_intermediates(x, indices=[n])
        with pytest.raises(ValueError, match=r"output_fmt 'NHWC' is not supported; valid choices: \['NCHW'\]"):
            model.forward_intermediates(x, output_fmt="NHWC")
    if "gc2l" not in name:
        return
    # grad checkpointing computes the same intermediates (timm's check), and gradients reach every parameter
    model.train().set_grad_checkpointing(True)
    torch.manual_seed(0)
    final_ckpt, inter_ckpt = model.forward_intermediates(x)
    model.set_grad_checkpointing(False)
    torch.manual_seed(0)
    final_plain, inter_plain = model.forward_intermediates(x)
    torch.testing.assert_close(final_ckpt, final_plain)
    (final_ckpt.sum() + sum(t.sum() for t in inter_ckpt)).backward()
    head = model.get_classifier(name_only=True)
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith(head)]
    assert not missing, missing[:5]


@pytest.mark.parametrize("name", EXTRACTED)
@pytest.mark.parametrize("feature_cls", ["list", "dict", "hook", "getter", "fx"])
def test_every_feature_extractor_returns_the_levels(name, feature_cls):
    """``create_model(..., features_only=True, out_indices=..., feature_cls=...)`` through timm's machinery:
    the levels asked for, in forward order, equal to the model's own; the backbone's feature_info matches."""
    torch.manual_seed(0)
    model = tglc_zoo.create_model(name).eval()
    torch.manual_seed(0)
    backbone = timm.create_model(name, features_only=True, out_indices=(-1, 1, 2), feature_cls=feature_cls).eval()
    assert backbone.pretrained_cfg["architecture"] == name and "num_classes" not in backbone.pretrained_cfg
    x = _input(model)
    levels, _ = _reference_levels(model, x)
    n = len(levels)
    with torch.no_grad():
        out = backbone(x)
    out = list(out.values()) if isinstance(out, dict) else out
    assert backbone.feature_info.channels() == [model.feature_info[i]["num_chs"] for i in (1, 2, n - 1)]
    assert backbone.feature_info.reduction() == [model.feature_info[i]["reduction"] for i in (1, 2, n - 1)]
    assert len(out) == 3
    for got, want in zip(out, (levels[1], levels[2], levels[-1])):
        assert torch.equal(got, want)


def test_features_only_defaults_bad_options_and_pretrained():
    backbone = tglc_zoo.create_model("wrn16_2_gc2l_n2", features_only=True)
    assert isinstance(backbone, timm.models.FeatureListNet)
    assert backbone.feature_info.channels() == [16, 32, 64, 128]  # every level by default
    assert [t.shape[1] for t in backbone(torch.randn(1, 3, 16, 16))] == [16, 32, 64, 128]
    with pytest.raises(ValueError, match=r"\['out_indices'\] configure a feature backbone and need features_only"):
        tglc_zoo.create_model("wrn16_2", out_indices=(1, 2))
    with pytest.raises(ValueError, match=r"feature index 5 is out of range; valid: -4 to 3"):
        tglc_zoo.create_model("wrn16_2", features_only=True, out_indices=(1, 5))
    with pytest.raises(ValueError, match=r"unknown feature_cls 'graph'.*valid choices: \['list', 'dict', 'hook'"):
        tglc_zoo.create_model("wrn16_2", features_only=True, feature_cls="graph")
    # pretrained weights load before wrapping: the backbone computes the checkpoint's features
    tag = tglc_zoo.list_models("wrn16_2_gc2l_n*.*", pretrained=True)[0]
    full = tglc_zoo.create_model(tag, pretrained=True).eval()
    backbone = timm.create_model(tag, pretrained=True, features_only=True, out_indices=(3,)).eval()
    x = torch.randn(2, *full.pretrained_cfg["input_size"])
    with torch.no_grad():
        assert torch.equal(backbone(x)[0], full.forward_intermediates(x, indices=[3], intermediates_only=True)[0])
    assert backbone.pretrained_cfg["input_size"] == full.pretrained_cfg["input_size"]


@pytest.mark.parametrize("name", ["wrn16_2_gc2l_n2", "mobilenetv2_gc2l_n2", "wrn34_2_gc2l_n8"])
def test_prune_intermediate_layers(name):
    model = tglc_zoo.create_model(name).eval()
    x = _input(model)
    levels, _ = _reference_levels(model, x)
    state = model.state_dict()
    kept = model.prune_intermediate_layers([1, 2])
    assert kept == [1, 2] and model.num_classes == 0 and model.global_pool == ""
    assert set(model.state_dict()) < set(state)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        inter = model.forward_intermediates(x, indices=kept, intermediates_only=True)
        assert torch.equal(inter[0], levels[1]) and torch.equal(inter[1], levels[2])
        assert torch.equal(model(x), levels[2])  # forward now ends at the last level kept, unpooled
    assert model.num_features == model.feature_info[2]["num_chs"]


@pytest.mark.parametrize("name,output_stride,reductions", [
    ("wrn16_2_gc2l_n2", 2, [1, 1, 2, 2]),
    ("wrn34_2_gc2l_n8", 8, [4, 4, 8, 8, 8]),
    ("mobilenetv2_gc2l_n2", 16, [2, 4, 8, 16, 16]),
])
def test_output_stride_dilates_instead_of_striding(name, output_stride, reductions):
    model = tglc_zoo.create_model(name, output_stride=output_stride).eval()
    assert [f["reduction"] for f in model.feature_info] == reductions and model.output_stride == output_stride
    x = _input(model)
    levels, feats = _reference_levels(model, x)
    for info, feat in zip(model.feature_info, levels):
        assert feat.shape[-1] == math.ceil(x.shape[-1] / info["reduction"])
    size = model.pretrained_cfg["input_size"][-1]
    assert tuple(model.pretrained_cfg["pool_size"]) == (math.ceil(size / output_stride),) * 2
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in tglc_zoo.create_model(name).state_dict().items()}  # the same weights fit
    assert model.model_args["output_stride"] == output_stride
    with pytest.raises(ValueError, match=r"unknown output_stride 64.*valid choices"):
        tglc_zoo.create_model(name, output_stride=64)


@pytest.mark.parametrize("name", ["wrn16_2_gc2l_n4", "mobilenetv2_gc2l_n2", "wrn34_2_gc2l_n8"])
def test_gc2l_backbone_under_torchvision_fpn(name):
    """A GC-2L detection/segmentation neck: torchvision's FeaturePyramidNetwork over the backbone's levels,
    forward and backward (every backbone parameter that feeds a level gets a gradient)."""
    backbone = tglc_zoo.create_model(name, features_only=True, out_indices=(-3, -2, -1))
    fpn = FeaturePyramidNetwork(backbone.feature_info.channels(), out_channels=32)
    x = torch.randn(2, 3, 32, 32)
    feats = OrderedDict((f"p{i}", f) for i, f in enumerate(backbone(x)))
    out = fpn(feats)
    assert [tuple(o.shape) for o in out.values()] == [(2, 32, *f.shape[-2:]) for f in feats.values()]
    sum(o.square().mean() for o in out.values()).backward()
    missing = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert all(torch.isfinite(p.grad).all() for p in backbone.parameters())
