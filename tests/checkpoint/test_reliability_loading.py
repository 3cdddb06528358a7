"""Loading's reliability: every checkpoint we write loads; loading never changes a model silently; damaged
or contradictory inputs are refused before anything large is allocated."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ckpt_helpers import grey, make_model
from safetensors.torch import save_file

import tglc_zoo
from tglc_zoo.checkpoint import ConfigError, CorruptCheckpointError, read_header, save_weights
from tglc_zoo.errors import StateDictMismatchError

REPO = Path(__file__).resolve().parents[2]
NAME = "wrn16_2_gc2l_n2"


# -- 1. a header length whose low byte is 0x80 is not a pickle ----------------------------------------
def _weights_with_low_byte(path: Path, low: int) -> None:
    tensors = {"w": torch.arange(6.0)}
    for pad in range(512):
        save_weights(path, tensors, None) if pad == 0 else save_file(tensors, str(path), metadata={"p": "x" * pad})
        if path.read_bytes()[0] == low:
            return
    raise AssertionError("no padding gives that low byte")


def test_header_length_with_low_byte_0x80_loads(tmp_path):
    path = tmp_path / "w.safetensors"
    _weights_with_low_byte(path, 0x80)
    assert path.read_bytes()[0] == 0x80 and read_header(path).tensors["w"].shape == (6,)


@pytest.mark.parametrize("classes", [10, 1000])
def test_every_saved_model_loads_whatever_its_header_length(tmp_path, classes):
    """Models with 10 and 1000 classes, and a sweep of metadata sizes through save/from_pretrained."""
    for name in ("wrn16_4_gc_n4", "wrn16_4_gc2l_n8", "wrn16_4_shuffle_n4"):
        model = tglc_zoo.create_model(name, num_classes=classes)
        folder = tglc_zoo.save_pretrained(model, tmp_path / name)
        tglc_zoo.from_pretrained(folder)
    model = make_model(NAME)
    base_cfg = dict(model.pretrained_cfg)
    seen = set()
    for i in range(40):  # the config's length, and so the header's, walks 280 bytes: past a low byte of 0x80
        model.pretrained_cfg = dict(base_cfg, description="d" * (7 * i))  # the safetensors metadata repeats the config
        folder = tglc_zoo.save_pretrained(model, tmp_path / f"s{i}")
        seen.add((folder / "model.safetensors").read_bytes()[0])
        assert tglc_zoo.from_pretrained(folder).pretrained_cfg["description"] == "d" * (7 * i)
    assert 0x80 in seen, sorted(seen)  # a saved model whose header length's low byte is a pickle's first byte


def test_a_pickle_is_still_called_a_pickle(tmp_path):
    path = tmp_path / "p.safetensors"
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CorruptCheckpointError, match="pickle; it was not unpickled"):
        read_header(path)


# -- 2. the weights win; adaptation only when asked --------------------------------------------------
@pytest.fixture
def c100(tmp_path) -> tuple[Path, torch.nn.Module]:
    """A plain state dict of a 100-class, 3-channel wrn16_2 (no config anywhere)."""
    src = make_model("wrn16_2", num_classes=100, in_chans=3)
    path = tmp_path / "c100.pth"
    torch.save(src.state_dict(), path)
    return path, src


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, chans: int = 3) -> None:
    with torch.no_grad():
        assert torch.equal(a.eval()(grey(chans=chans)), b.eval()(grey(chans=chans)))


def test_plain_state_dict_loads_as_what_it_is(c100):
    path, src = c100
    model = tglc_zoo.create_model("wrn16_2", pretrained=str(path))
    assert model.num_classes == 100 and model.model_args["in_chans"] == 3
    _same_outputs(model, src)
    hub = torch.hub.load(str(REPO), "wrn16_2", source="local", pretrained=str(path))
    _same_outputs(hub, src)
    import timm

    overlay = timm.create_model("wrn16_2", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert overlay.num_classes == 100
    _same_outputs(overlay, src)


def test_asking_for_another_head_or_stem_adapts_them(c100, caplog):
    path, src = c100
    model = tglc_zoo.create_model("wrn16_2", pretrained=str(path), num_classes=10, in_chans=1)
    assert model.num_classes == 10 and model.stem.conv.weight.shape[1] == 1
    assert "checkpoint has 100 classes, model has 10" in caplog.text


def test_a_missing_or_foreign_head_is_an_error(tmp_path):
    src = make_model(NAME)
    sd = src.state_dict()
    headless = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    torch.save(headless, tmp_path / "headless.pth")
    with pytest.raises(StateDictMismatchError, match=r"missing keys \(2\): \['fc.bias', 'fc.weight'\]"):
        tglc_zoo.create_model(NAME, pretrained=str(tmp_path / "headless.pth"), in_chans=1)
    # asking for a head is fine: the checkpoint's head is not needed
    assert tglc_zoo.create_model(NAME, pretrained=str(tmp_path / "headless.pth"), num_classes=5).num_classes == 5
    wide = dict(sd, **{"fc.weight": torch.zeros(3, 7)})
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(StateDictMismatchError, match=r"fc.weight: checkpoint \(3, 7\) vs model \(3, 128\)"):
        tglc_zoo.create_model(NAME, pretrained=str(tmp_path / "wide.pth"))
    with pytest.raises(StateDictMismatchError, match=r"takes 7 features but the model's body gives 128"):
        tglc_zoo.create_model(NAME, pretrained=str(tmp_path / "wide.pth"), num_classes=4)


def _rewrite_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        target = cfg
        *path, last = key.split(".")
        for p in path:
            target = target[p]
        target[last] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    # the same config in the weights' metadata, so the two agree and only the weights contradict them
    from safetensors.torch import load_file
    save_file(load_file(folder / "model.safetensors"), str(folder / "model.safetensors"),
              metadata={"format": "pt", "tglc_zoo.config": json.dumps(cfg)})


@pytest.mark.parametrize("change,match", [
    ({"num_classes": 7}, r"config says num_classes=7 but its weights have 3"),
    ({"model_args.in_chans": 3}, r"config says in_chans=3 but its weights have 1"),
    ({"num_features": 64}, r"config says num_features=64 but its weights have 128"),
    ({"pretrained_cfg.classifier": "head_drop"}, r"names classifier 'head_drop', but the architecture's"),
    ({"pretrained_cfg.first_conv": "stages"}, r"names first_conv 'stages'"),
    ({"model_args.widen": 3}, r"does not take the argument\(s\) \['widen'\] in .*valid arguments"),
])
def test_a_config_that_contradicts_its_weights_is_an_error(tmp_path, change, match):
    folder = tglc_zoo.save_pretrained(make_model(NAME), tmp_path / "ck")
    _rewrite_config(folder, **change)
    with pytest.raises(ConfigError, match=match):
        tglc_zoo.from_pretrained(folder)


def test_unknown_model_argument_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"does not take the argument\(s\) \['widen'\]; valid arguments: \["):
        tglc_zoo.create_model("wrn16_2", widen=3)


# -- 5. validated before allocation ------------------------------------------------------------------
@pytest.mark.parametrize("change", [{"num_classes": 10**9}, {"model_args.in_chans": 10**8}])
def test_absurd_config_is_refused_before_allocating(tmp_path, change):
    folder = tglc_zoo.save_pretrained(make_model(NAME), tmp_path / "ck")
    _rewrite_config(folder, **change)
    code = ("import resource, tglc_zoo\n"
            "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))\n"  # far less than the model would need
            f"try:\n    tglc_zoo.from_pretrained({str(folder)!r})\n"
            "except tglc_zoo.errors.ConfigError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("refused:"), out.stderr[-2000:]


# -- 6. no silent casts, no NaN, no negative variances ------------------------------------------------
@pytest.mark.parametrize("key,value,match", [
    ("stages.0.0.conv1.conv.weight", lambda t: t.to(torch.int32), "of another kind than the model's"),
    ("fc.weight", lambda t: t.bool(), "of another kind than the model's"),
    ("stages.1.0.bn1.weight", lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), "NaN or Inf"),
    ("fc.bias", lambda t: t + float("inf"), "NaN or Inf"),
    ("stages.0.0.bn2.running_var", lambda t: -t, "negative BatchNorm running variances"),
])
def test_damaged_values_are_refused(tmp_path, key, value, match):
    sd = make_model(NAME).state_dict()
    sd[key] = value(sd[key])
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(StateDictMismatchError, match=match):
        tglc_zoo.create_model(NAME, pretrained=str(tmp_path / "bad.safetensors"))


# -- 4. a user's files are never overwritten ---------------------------------------------------------
def test_save_pretrained_never_replaces_a_users_readme(tmp_path):
    model = make_model(NAME)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("# my notes\n")
    with pytest.raises(tglc_zoo.errors.CheckpointError, match=r"not its own: \['README.md'\]"):
        tglc_zoo.save_pretrained(model, folder)
    assert (folder / "README.md").read_text() == "# my notes\n"
    tglc_zoo.save_pretrained(model, tmp_path / "ck")
    tglc_zoo.save_pretrained(model, tmp_path / "ck")  # our own card is replaced


def test_save_pretrained_into_the_working_directory_is_refused(tmp_path, monkeypatch):
    folder = tglc_zoo.save_pretrained(make_model(NAME), tmp_path / "ck")
    monkeypatch.chdir(folder)
    with pytest.raises(tglc_zoo.errors.CheckpointError, match="current working directory"):
        tglc_zoo.save_pretrained(make_model(NAME), ".")
    assert Path.cwd() == folder and (folder / "model.safetensors").is_file()


def test_save_pretrained_through_a_symlink_keeps_the_link(tmp_path):
    real = tglc_zoo.save_pretrained(make_model(NAME), tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    tglc_zoo.save_pretrained(make_model(NAME, seed=3), link)
    assert link.is_symlink() and link.resolve() == real
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    _same_outputs(tglc_zoo.from_pretrained(link), make_model(NAME, seed=3), chans=1)


# -- 8. errors that name the file or option, never a raw traceback -----------------------------------
def _raw_safetensors(path: Path, header: bytes) -> Path:
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


@pytest.mark.parametrize("header,match", [
    (b'{"__metadata__": ["not", "a", "map"]}', "malformed safetensors metadata"),
    (b'{"__metadata__": {"tglc_zoo.config": 7}}', "malformed safetensors metadata"),
    (b'{"w": ' + b"[" * 50000 + b"]" * 50000 + b"}", "header is not JSON: RecursionError"),
    (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', r"declares F32 \[2\] \(8 bytes\)"),
    (b'{"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}', "malformed safetensors header entry 'w'"),
])
def test_malformed_headers_are_named(tmp_path, header, match):
    path = _raw_safetensors(tmp_path / "m.safetensors", header)
    with pytest.raises(CorruptCheckpointError, match=match):
        tglc_zoo.create_model(NAME, pretrained=str(path))


@pytest.mark.parametrize("change,match", [
    ({"pretrained_cfg.mean": "abc"}, r"pretrained_cfg 'mean' must be a non-empty list of finite numbers"),
    ({"pretrained_cfg.input_size": []}, r"pretrained_cfg 'input_size' must be three positive integers"),
    ({"pretrained_cfg.std": [0.0]}, r"pretrained_cfg 'std' must be a non-empty list of positive numbers"),
])
def test_bad_config_values_are_named(tmp_path, change, match):
    folder = tglc_zoo.save_pretrained(make_model(NAME), tmp_path / "ck")
    _rewrite_config(folder, **change)
    with pytest.raises(ConfigError, match=match):
        tglc_zoo.from_pretrained(folder)


def test_an_absurdly_long_hub_id_is_a_clean_error():
    with pytest.raises(tglc_zoo.errors.TglcZooError, match="not an existing folder"):
        tglc_zoo.from_pretrained("org/" + "x" * 5000)


# -- 9. a local folder wins over a tag of the same spelling -----------------------------------------
def test_a_local_folder_named_like_a_tag_wins(tmp_path, monkeypatch):
    tags = tglc_zoo.list_models(pretrained=True)
    if not tags:
        pytest.skip("no shipped tags")
    tag = tags[0]
    arch = tag.rpartition(".")[0]
    mine = make_model(arch, seed=5)
    monkeypatch.chdir(tmp_path)
    tglc_zoo.save_pretrained(mine, tmp_path / tag)
    loaded = tglc_zoo.from_pretrained(tag)
    assert loaded.num_classes == 3  # ours (make_model: 3 classes), not the shipped 10-class tag
    _same_outputs(loaded, mine, chans=1)
