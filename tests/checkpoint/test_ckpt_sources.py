import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import tglc_zoo
from tglc_zoo.checkpoint import (
    CheckpointNotFoundError,
    ConfigError,
    CorruptCheckpointError,
    HashMismatchError,
    read_state_dict,
    resolve_source,
    save_weights,
    write_config,
)
from tglc_zoo.util.hashing import sha256_file


@pytest.fixture
def folder(tmp_path, tensors, cfg_dict):
    d = tmp_path / "ckpt"
    d.mkdir()
    save_weights(d / "model.safetensors", tensors, cfg_dict)
    write_config(d / "config.json", cfg_dict)
    return d


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_folder_and_file(folder, tensors, cfg_dict):
    for source in (folder, str(folder), folder / "model.safetensors"):
        r = resolve_source(source)
        assert r.config == cfg_dict and _same(read_state_dict(r), tensors)


def test_config_json_may_relabel_but_not_restructure(folder, cfg_dict):
    write_config(folder / "config.json", dict(cfg_dict, pretrained_cfg=dict(cfg_dict["pretrained_cfg"],
                                                                            label_names=["x", "y", "z"])))
    assert resolve_source(folder).config["pretrained_cfg"]["label_names"] == ["x", "y", "z"]
    write_config(folder / "config.json", dict(cfg_dict, model_args=dict(cfg_dict["model_args"], groups=4)))
    with pytest.raises(ConfigError, match="disagree.*model_args"):
        resolve_source(folder)


def test_folder_without_weights_lists_what_it_has(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointNotFoundError, match=r"model\.safetensors.*notes\.txt"):
        resolve_source(tmp_path / "empty")


def test_nothing_there(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="not an existing folder"):
        resolve_source(tmp_path / "absent" / "x.safetensors")


def test_unknown_suffix(tmp_path):
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(CorruptCheckpointError, match=r"w\.onnx.*\.safetensors"):
        resolve_source(tmp_path / "w.onnx")


def test_legacy_folder(tmp_path, tensors, cfg_dict):
    d = tmp_path / "legacy"
    d.mkdir()
    torch.save(tensors, d / "pytorch_model.bin")
    write_config(d / "config.json", cfg_dict)
    r = resolve_source(d)
    assert r.config == cfg_dict and _same(read_state_dict(r), tensors)


def test_sha256_checked_for_local_files(folder):
    digest = sha256_file(folder / "model.safetensors")
    assert resolve_source(folder, sha256=digest).weights.name == "model.safetensors"
    with pytest.raises(HashMismatchError):
        resolve_source(folder, sha256="00" + digest[2:])


def test_hf_cache_offline(folder, tensors, cfg_dict, hf_cache):
    commit = hf_cache("org/ckpt", folder)
    for source in ("org/ckpt", "hf-hub:org/ckpt", f"hf-hub:org/ckpt@{commit}"):
        r = resolve_source(source)
        assert r.config == cfg_dict and _same(read_state_dict(r), tensors)
        assert str(hf_cache.cache) in str(r.weights)
    assert resolve_source("org/ckpt", revision=commit).origin == f"hf-hub:org/ckpt@{commit}"


def test_hf_cache_offline_missing_repo_and_revision(hf_cache, folder):
    hf_cache("org/ckpt", folder)
    with pytest.raises(CheckpointNotFoundError, match="HF_HUB_OFFLINE"):
        resolve_source("org/other")
    with pytest.raises(CheckpointNotFoundError, match="not in the Hugging Face cache"):
        resolve_source("org/ckpt", revision="v2")


def test_hf_offline_env_in_a_fresh_process(folder, cfg_dict, hf_cache):
    """HF_HUB_OFFLINE and HF_HUB_CACHE as a user sets them, read by huggingface_hub at import."""
    hf_cache("org/ckpt", folder)
    code = textwrap.dedent("""
        from tglc_zoo.checkpoint import resolve_source, read_state_dict
        r = resolve_source("hf-hub:org/ckpt")
        print(r.config["architecture"], sorted(read_state_dict(r)))
    """)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hf_cache.cache), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(tglc_zoo.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=str(folder.parent.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == cfg_dict["architecture"]
