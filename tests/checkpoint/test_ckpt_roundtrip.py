"""save_pretrained -> every loading route gives bit-identical outputs, for every conv type."""
from pathlib import Path

import pytest
import timm
import torch
from ckpt_helpers import CONV_VARIANTS, grey, make_model

import tglc_zoo

REPO = Path(tglc_zoo.__file__).resolve().parents[1]


@pytest.fixture(params=sorted(CONV_VARIANTS), scope="module")
def saved(request, tmp_path_factory):
    name = CONV_VARIANTS[request.param]
    model = make_model(name)
    folder = tglc_zoo.save_pretrained(model, tmp_path_factory.mktemp(request.param) / name,
                                      metrics={"top1": 12.5}, dataset="synthetic")
    x = grey()
    with torch.no_grad():
        return name, folder, model.state_dict(), x, model(x)


def _check(model, saved):
    name, _, state, x, y = saved
    assert model.pretrained_cfg["architecture"] == name and not model.training
    assert model.num_classes == 3 and model.model_args["in_chans"] == 1
    with torch.no_grad():
        assert torch.equal(model(x), y)
    sd = model.state_dict()
    assert sd.keys() == state.keys() and all(torch.equal(sd[k], state[k]) for k in state)


def test_folder_file_and_registry(saved):
    name, folder, *_ = saved
    _check(tglc_zoo.from_pretrained(folder).eval(), saved)
    _check(tglc_zoo.from_pretrained(str(folder / "model.safetensors")).eval(), saved)
    _check(tglc_zoo.create_model(name, pretrained=folder).eval(), saved)


def test_file_url(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _check(tglc_zoo.from_pretrained((saved[1] / "model.safetensors").as_uri()).eval(), saved)
    assert not (tmp_path / "torch").exists()  # a file:// URL is read in place, never copied into a cache


def test_hf_cache_offline(saved, hf_cache):
    commit = hf_cache("tglc/ckpt", saved[1])
    _check(tglc_zoo.from_pretrained("tglc/ckpt").eval(), saved)
    _check(tglc_zoo.from_pretrained("hf-hub:tglc/ckpt", revision=commit, local_files_only=True).eval(), saved)
    _check(timm.create_model("hf-hub:tglc/ckpt", pretrained=True).eval(), saved)


def test_timm_local_dir_and_overlay(saved):
    name, folder, *_ = saved
    _check(timm.create_model(f"local-dir:{folder}", pretrained=True).eval(), saved)
    _check(tglc_zoo.create_model(f"local-dir:{folder}", pretrained=True).eval(), saved)
    overlay = dict(file=str(folder / "model.safetensors"))
    _check(timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay).eval(), saved)


def test_torch_hub_local(saved):
    name, folder, *_ = saved
    _check(torch.hub.load(str(REPO), name, source="local", pretrained=str(folder)).eval(), saved)


def test_saved_folder_is_self_describing(saved):
    from huggingface_hub import ModelCard

    from tglc_zoo.checkpoint import read_config, read_metadata_config

    name, folder, *_ = saved
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = read_config(folder / "config.json")
    assert cfg == read_metadata_config(folder / "model.safetensors")
    assert cfg["architecture"] == name and cfg["num_classes"] == 3 and cfg["global_pool"] == "avg"
    expected_conv = next(c for c, n in CONV_VARIANTS.items() if n == name)
    assert cfg["model_args"]["conv_type"] == expected_conv
    assert cfg["pretrained_cfg"]["first_conv"] == "stem.conv" and cfg["pretrained_cfg"]["classifier"] == "fc"
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "tglc_zoo" and card.data.datasets == ["synthetic"]
    assert "| top1 | 12.5 |" in card.text


def test_unknown_cfg_fields_are_not_written(tmp_path):
    """config.json stays loadable by timm, whose PretrainedCfg refuses unknown fields."""
    from ckpt_helpers import make_model

    model = make_model("wrn16_2")
    model.pretrained_cfg = {**model.pretrained_cfg, "my_note": "x", "label_names": ["a", "b", "c"]}
    folder = tglc_zoo.save_pretrained(model, tmp_path / "ck")
    cfg = tglc_zoo.checkpoint.read_config(folder / "config.json")
    assert "my_note" not in cfg["pretrained_cfg"] and cfg["pretrained_cfg"]["label_names"] == ["a", "b", "c"]
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert loaded.pretrained_cfg["label_names"] == ["a", "b", "c"]


def test_hf_offline_env_in_a_fresh_process(tmp_path):
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE exported as a user would; huggingface_hub reads them at import."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    from ckpt_helpers import make_model
    from safetensors.torch import save_file

    from tests.support.hf_cache import populate_hf_cache

    model = make_model("wrn16_2_gc2l_n2")
    folder = tglc_zoo.save_pretrained(model, tmp_path / "ck")
    populate_hf_cache(tmp_path / "cache", "tglc/offline", folder)
    with torch.no_grad():
        save_file({"x": grey(), "y": model(grey())}, tmp_path / "ref.safetensors")
    code = textwrap.dedent("""
        import json, sys, timm, torch, tglc_zoo
        from safetensors.torch import load_file
        r = load_file(sys.argv[1])
        with torch.no_grad():
            out = [bool(torch.equal(m.eval()(r["x"]), r["y"])) for m in (
                tglc_zoo.from_pretrained("tglc/offline"), timm.create_model("hf-hub:tglc/offline", pretrained=True))]
        print("RESULT " + json.dumps(out))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ref.safetensors")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.split("RESULT ", 1)[1]) == [True, True]


def test_a_compiled_or_wrapped_model_saves_with_its_own_keys(tmp_path: Path) -> None:
    import tglc_zoo

    model = tglc_zoo.create_model("wrn16_2_gc2l_n2", num_classes=10).eval()
    for i, wrapped in enumerate((torch.compile(model), torch.nn.DataParallel(model))):
        folder = tglc_zoo.save_pretrained(wrapped, tmp_path / f"w{i}")
        loaded = tglc_zoo.from_pretrained(folder).eval()
        assert list(loaded.state_dict()) == list(model.state_dict())  # no _orig_mod. / module. prefixes
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
