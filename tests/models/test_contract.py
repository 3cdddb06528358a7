"""timm's model contract, held over every registered model.

Small models run for real on the CPU; the big ones (WRN-28-40/60/80 and most WRN-28-10/WRN-34-2
variants) run the same checks on the meta device, which propagates shapes and autograd without
allocating memory. The checks are those of timm's own ``tests/test_models.py`` (``test_model_forward``,
``_backward``, ``_default_cfgs``), plus exact values where timm only checks shapes; features, tracing,
export and data are in the other files of this folder.
"""
import pytest
import timm
import torch
from model_helpers import check_contract, check_contract_real
from timm.models import get_pretrained_cfg

import tglc_zoo
from tglc_zoo.archs import VARIANTS
from tglc_zoo.builder import default_weights_tag

REAL_ARCHS = {"wrn16_2", "wrn16_4", "mobilenetv2"}
REAL_EXTRA = {"wrn28_10", "wrn28_10_gc2l_n16", "wrn34_2_gc2l_n8", "wrn34_2_flgc_n4"}
ALL = tglc_zoo.list_models()
REAL = [n for n in ALL if VARIANTS[n].arch in REAL_ARCHS or n in REAL_EXTRA]
META = [n for n in ALL if n not in REAL]


@pytest.mark.parametrize("name", REAL)
def test_contract_real(name):
    check_contract_real(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", META)
def test_contract_meta(name):
    check_contract(name, "meta")


@pytest.mark.parametrize("name", ["wrn16_2_gc2l_n4", "mobilenetv2_flgc_n2", "wrn16_4"])
def test_timm_create_model_builds_the_same_model(name):
    torch.manual_seed(3)
    ours = tglc_zoo.create_model(name, num_classes=5)
    torch.manual_seed(3)
    theirs = timm.create_model(name, num_classes=5)
    assert type(ours) is type(theirs)
    sd_a, sd_b = ours.state_dict(), theirs.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        torch.testing.assert_close(sd_a[k], sd_b[k], rtol=0, atol=0)
    assert timm.is_model(name)
    assert set(timm.list_models("wrn*gc2l*")) >= {n for n in ALL if n.startswith("wrn") and "_gc2l_" in n}


def test_every_name_listed_and_variant_grid():
    assert len(ALL) == 7 * 17 + 13
    for arch in ["wrn16_2", "wrn16_4", "wrn28_10", "wrn28_40", "wrn28_60", "wrn28_80", "wrn34_2", "mobilenetv2"]:
        assert tglc_zoo.is_model(arch)
    assert tglc_zoo.is_model("mobilenetv2_shuffle_n8") and not tglc_zoo.is_model("mobilenetv2_gc_n16")
    assert tglc_zoo.list_models("wrn28_10_gc2l*") == [f"wrn28_10_gc2l_n{n}" for n in (16, 2, 4, 8)]


def test_overrides_conv_type_and_groups():
    model = tglc_zoo.create_model("wrn16_2", conv_type="gc2l", groups=2)
    assert model.model_args["conv_type"] == "gc2l" and model.model_args["groups"] == 2
    assert isinstance(model.stages[0][0].conv1, tglc_zoo.layers.TwoLevelGroupConv2d)
    rebuilt = tglc_zoo.create_model(model.pretrained_cfg["architecture"], num_classes=model.num_classes,
                                    **model.model_args)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_in_chans_and_drop_rate():
    model = tglc_zoo.create_model("wrn16_2_gc_n2", in_chans=1, num_classes=10, drop_rate=0.3)
    assert model.stem.conv.in_channels == 1 and model.pretrained_cfg["input_size"][0] == 1
    assert model.head_drop.p == 0.3
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name,kwargs,match", [
    ("wrn16_2", dict(conv_type="gc", groups=3), r"layer 'stages\.0\.0\.conv1'.*16->32.*groups=3.*valid groups"),
    ("mobilenetv2", dict(conv_type="gc2l", groups=16), r"layer 'blocks\..*groups=16.*valid groups"),
    ("wrn16_2", dict(conv_type="dense"), r"unknown conv_type 'dense'.*valid choices.*'gc2l'"),
    ("wrn16_2", dict(in_chans=0), r"in_chans must be a positive integer, got 0"),
    ("wrn16_2", dict(num_classes=-1), r"num_classes must be a non-negative integer, got -1"),
    ("wrn28_10_gc2l_n3", {}, r"unknown model 'wrn28_10_gc2l_n3'.*did you mean .*'wrn28_10_gc2l_n2'"),
    ("resnet50", {}, r"unknown model 'resnet50'.*valid choices: architectures"),
    ("wrn16_2.nope", {}, r"unknown pretrained tag 'nope'.*the tags of wrn16_2 with weights"),
])
def test_bad_input(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tglc_zoo.create_model(name, **kwargs)


def test_untrained_model_describes_its_architecture_not_a_pretrained_tag():
    # even when a tag with weights exists, a fresh model keeps its own data cfg
    model = tglc_zoo.create_model("wrn16_2")
    assert model.pretrained_cfg.get("tag") is None and "file" not in {k for k, v in model.pretrained_cfg.items() if v}
    assert tuple(model.pretrained_cfg["input_size"]) == (3, 32, 32)
    assert tuple(model.pretrained_cfg["mean"]) == (0.4914, 0.4822, 0.4465)


CFG_FIELDS = ("input_size", "num_classes", "mean", "std", "crop_pct", "interpolation", "first_conv", "classifier",
              "pool_size")


@pytest.mark.parametrize("name", ALL)
def test_default_cfg_describes_the_model_the_untagged_name_builds(name):
    """timm's invariant: ``get_pretrained_cfg(name)`` (the default tag) is the config of ``create_model(name)``,
    whatever tags with weights exist (the untagged config is always timm's default)."""
    default = get_pretrained_cfg(name).to_dict()
    assert default.get("tag") is None and not default.get("file") and default["architecture"] == name
    with torch.device("meta"):
        model = tglc_zoo.create_model(name)
        x = torch.empty(1, *default["input_size"])
        feats = model.forward_features(x)
    for key in CFG_FIELDS:
        assert _plain(model.pretrained_cfg[key]) == _plain(default[key]), key
    assert model.num_classes == default["num_classes"]
    assert model.get_submodule(default["first_conv"]).in_channels == default["input_size"][0]
    assert tuple(feats.shape[-2:]) == tuple(default["pool_size"])


def _plain(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


TAGGED = tglc_zoo.list_models(pretrained=True)


@pytest.mark.parametrize("tagged", TAGGED)
def test_every_tag_config_describes_its_model(tagged):
    """A tag's config (timm's ``get_pretrained_cfg("name.tag")``) holds ``pool_size``, ``first_conv`` and
    ``classifier`` for its own input, and the model built from it (no weights) computes that shape."""
    cfg = get_pretrained_cfg(tagged).to_dict()
    model = timm.create_model(tagged).eval()
    x = torch.randn(1, *model.pretrained_cfg["input_size"])
    assert model.pretrained_cfg["input_size"][1:] == tuple(cfg["input_size"][1:])
    assert tuple(model.forward_features(x).shape[-2:]) == tuple(cfg["pool_size"])
    state = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in state and f"{cfg['classifier']}.weight" in state


def test_pretrained_true_on_an_untagged_name_loads_its_first_tag():
    """``pretrained=True`` still loads weights: the untagged name's first tag with weights (manifest order),
    through tglc_zoo and timm alike; a name with no tag says where weights can come from."""
    name = "wrn16_2_gc2l_n16"
    tag = default_weights_tag(name)
    assert tag is not None and f"{name}.{tag}" in TAGGED
    want = tglc_zoo.create_model(f"{name}.{tag}", pretrained=True).state_dict()
    for model in (tglc_zoo.create_model(name, pretrained=True), timm.create_model(name, pretrained=True)):
        assert model.pretrained_cfg["tag"] == tag
        got = model.state_dict()
        assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert default_weights_tag("wrn16_4") is None
    with pytest.raises(ValueError, match=r"no pretrained weights are available for 'wrn16_4'"):
        tglc_zoo.create_model("wrn16_4", pretrained=True)
