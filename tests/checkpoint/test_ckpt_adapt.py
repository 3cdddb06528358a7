"""The two deliberate adaptations (num_classes, in_chans) and strictness for everything else."""
import logging

import pytest
import torch
from ckpt_helpers import grey, make_model

import tglc_zoo
from tglc_zoo.builder import load_pretrained_into
from tglc_zoo.checkpoint import ConfigError, make_config, render_model_card, write_checkpoint_folder
from tglc_zoo.errors import StateDictMismatchError
from tglc_zoo.models._adapt import adapt_stem_weight

NAME = "wrn16_2_gc2l_n2"


def _save(model, folder):
    return tglc_zoo.save_pretrained(model, folder)


def test_new_num_classes_reinitialises_only_the_head(tmp_path, caplog):
    src = make_model(NAME)
    folder = _save(src, tmp_path / "ck")
    with caplog.at_level(logging.WARNING, logger="tglc_zoo"):
        model = tglc_zoo.from_pretrained(folder, num_classes=7).eval()
    assert "classifier 'fc': checkpoint has 3 classes, model has 7" in caplog.text
    assert model.num_classes == 7 and model.get_classifier().weight.shape == (7, src.num_features)
    assert model.pretrained_cfg["num_classes"] == 7
    own, ref = model.state_dict(), src.state_dict()
    assert all(torch.equal(own[k], ref[k]) for k in ref if not k.startswith("fc."))
    x = grey()
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(x), pre_logits=True),
                           src.forward_head(src.forward_features(x), pre_logits=True))
    fresh = tglc_zoo.create_model(NAME, num_classes=7, in_chans=1)  # the head keeps its initialisation
    assert torch.equal(model.fc.bias, fresh.fc.bias) and model.fc.weight.std() < 0.05


def test_no_head_is_not_called_a_fresh_head(tmp_path, caplog):
    folder = _save(make_model(NAME), tmp_path / "ck")
    tags = tglc_zoo.list_models(pretrained=True)
    with caplog.at_level(logging.WARNING, logger="tglc_zoo"):
        models = [tglc_zoo.from_pretrained(folder, num_classes=0)]
        models += [tglc_zoo.create_model(tags[0], pretrained=True, num_classes=0)] if tags else []
    for model in models:
        assert model.num_classes == 0 and isinstance(model.get_classifier(), torch.nn.Identity)
    assert "checkpoint has 3 classes; with num_classes=0 the model has no classifier" in caplog.text
    assert "fresh initialisation" not in caplog.text


def test_one_channel_model_adapted_to_three(tmp_path, caplog):
    src = make_model(NAME, in_chans=1)
    folder = _save(src, tmp_path / "ck")
    with caplog.at_level(logging.WARNING, logger="tglc_zoo"):
        model = tglc_zoo.from_pretrained(folder, in_chans=3).eval()
    assert "stem 'stem.conv': 1 input channels -> 3" in caplog.text
    assert model.model_args["in_chans"] == 3 and model.pretrained_cfg["input_size"][0] == 3
    assert len(model.pretrained_cfg["mean"]) == 3
    g = grey(chans=1)
    with torch.no_grad():
        torch.testing.assert_close(model(g.repeat(1, 3, 1, 1)), src(g), rtol=1e-5, atol=1e-5)


def test_three_channel_model_adapted_to_one(tmp_path):
    src = make_model(NAME, in_chans=3)
    model = tglc_zoo.from_pretrained(_save(src, tmp_path / "ck"), in_chans=1).eval()
    g = grey(chans=1)
    with torch.no_grad():
        torch.testing.assert_close(model(g), src(g.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)
    assert model.pretrained_cfg["input_size"][0] == 1 and len(model.pretrained_cfg["std"]) == 1


def test_both_adaptations_at_once_through_torch_hub(tmp_path):
    from pathlib import Path

    src = make_model(NAME, in_chans=3)
    folder = _save(src, tmp_path / "ck")
    repo = Path(tglc_zoo.__file__).resolve().parents[1]
    model = torch.hub.load(str(repo), NAME, source="local", pretrained=str(folder), num_classes=5, in_chans=1)
    assert model.num_classes == 5 and model.stem.conv.weight.shape[1] == 1
    torch.testing.assert_close(model.stem.conv.weight, src.stem.conv.weight.sum(1, keepdim=True))


def test_cyclic_repeat_and_scale():
    w = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)
    out = adapt_stem_weight(w, 5)
    torch.testing.assert_close(out, torch.cat([w, w[:, :2]], 1) * 3 / 5)
    torch.testing.assert_close(adapt_stem_weight(w, 1), w.sum(1, keepdim=True))
    assert adapt_stem_weight(w, 3) is w
    with pytest.raises(ValueError, match="4-D"):
        adapt_stem_weight(torch.zeros(3, 3), 1)


# --- strictness --------------------------------------------------------------------------------
def test_missing_unexpected_and_mismatched_keys_are_listed():
    model = make_model(NAME)
    sd = model.state_dict()
    sd.pop("stages.1.0.conv1.restrict.weight")
    sd["stages.9.extra"] = torch.zeros(1)
    sd["stages.0.0.bn1.weight"] = torch.zeros(99)
    with pytest.raises(StateDictMismatchError) as e:
        load_pretrained_into(make_model(NAME, seed=1), sd)
    msg = str(e.value)
    assert "missing keys (1): ['stages.1.0.conv1.restrict.weight']" in msg
    assert "unexpected keys (1): ['stages.9.extra']" in msg
    assert "stages.0.0.bn1.weight: checkpoint (99,) vs model (16,)" in msg
    target = make_model(NAME, seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_pretrained_into(target, sd, strict=False)
    assert report.missing == ["stages.1.0.conv1.restrict.weight"] and report.unexpected == ["stages.9.extra"]
    after = target.state_dict()
    assert torch.equal(after["stages.1.0.conv1.restrict.weight"], before["stages.1.0.conv1.restrict.weight"])
    assert torch.equal(after["stages.0.0.bn1.weight"], before["stages.0.0.bn1.weight"])
    assert torch.equal(after["stages.0.0.conv1.conv.weight"], sd["stages.0.0.conv1.conv.weight"])


def test_config_disagreeing_with_weights(tmp_path):
    """config.json (and metadata) say N=2 but the tensors come from an N=4 model."""
    other = make_model("wrn16_2_gc2l_n4")
    model = make_model(NAME)
    cfg = make_config(architecture=NAME, num_classes=3, num_features=model.num_features, global_pool="avg",
                      model_args=model.model_args, pretrained_cfg=model.pretrained_cfg)
    folder = write_checkpoint_folder(tmp_path / "liar", other.state_dict(), cfg, render_model_card(cfg))
    with pytest.raises(StateDictMismatchError, match=r"does not fit wrn16_2_gc2l_n2.*shape mismatches"):
        tglc_zoo.from_pretrained(folder)


def test_unknown_architecture_in_config(tmp_path):
    model = make_model(NAME)
    cfg = make_config(architecture="wrn99_gc2l_n3", num_classes=3, num_features=model.num_features,
                      global_pool="avg", model_args=model.model_args, pretrained_cfg=model.pretrained_cfg)
    folder = write_checkpoint_folder(tmp_path / "alien", model.state_dict(), cfg, render_model_card(cfg))
    with pytest.raises(ConfigError, match=r"architecture 'wrn99_gc2l_n3'.*list_models"):
        tglc_zoo.from_pretrained(folder)


def test_checkpoint_of_another_architecture(tmp_path):
    folder = _save(make_model(NAME), tmp_path / "ck")
    with pytest.raises(ConfigError, match=r"holds a 'wrn16_2_gc2l_n2' checkpoint, not 'wrn16_2_gc_n2'"):
        tglc_zoo.create_model("wrn16_2_gc_n2", pretrained=folder)


def test_no_weights_for_pretrained_true():
    # WRN-28-80 weights will never ship in the repository
    with pytest.raises(ValueError, match=r"no pretrained weights are available for 'wrn28_80'.*tags with weights"):
        with torch.device("meta"):
            tglc_zoo.create_model("wrn28_80", pretrained=True)


def test_plain_safetensors_needs_a_named_model(tmp_path):
    from safetensors.torch import save_file

    model = make_model(NAME)
    save_file(model.state_dict(), tmp_path / "bare.safetensors")
    with pytest.raises(ConfigError, match="carries no config.*create_model"):
        tglc_zoo.from_pretrained(tmp_path / "bare.safetensors")
    loaded = tglc_zoo.create_model(NAME, num_classes=3, in_chans=1, pretrained=tmp_path / "bare.safetensors")
    with torch.no_grad():
        assert torch.equal(loaded.eval()(grey()), model(grey()))
