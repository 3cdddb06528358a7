import pytest
import torch

from tglc_zoo.checkpoint import (
    CheckpointNotFoundError,
    HashMismatchError,
    cached_download,
    hash_prefix_of,
    resolve_source,
    save_weights,
)
from tglc_zoo.util.hashing import sha256_file


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home" / "hub" / "checkpoints"


def _weights(folder, tensors, cfg, stem="model", with_hash=False, bad_hash=False):
    folder.mkdir(exist_ok=True)
    path = folder / f"{stem}.safetensors"
    save_weights(path, tensors, cfg)
    if with_hash:
        prefix = "0123abcd" if bad_hash else sha256_file(path)[:10]
        path = path.rename(folder / f"{stem}-{prefix}.safetensors")
    return path


def test_hash_prefix_follows_torch_hub():
    assert hash_prefix_of("resnet18-f37072fd.pth") == "f37072fd"
    assert hash_prefix_of("wrn16_2_gc2l_n2.safetensors") is None


def test_file_url_is_cached_under_torch_hub_dir(tmp_path, torch_home, tensors, cfg_dict):
    src = _weights(tmp_path / "server", tensors, cfg_dict, with_hash=True)
    resolved = resolve_source(src.as_uri())
    assert resolved.weights == torch_home / src.name
    assert resolved.weights.read_bytes() == src.read_bytes()
    assert resolved.config == cfg_dict
    src.unlink()  # a second resolve is served from the cache
    assert resolve_source(src.as_uri()).weights == torch_home / src.name


def test_wrong_hash_prefix_is_refused_and_not_cached(tmp_path, torch_home, tensors, cfg_dict):
    src = _weights(tmp_path / "server", tensors, cfg_dict, with_hash=True, bad_hash=True)
    with pytest.raises(HashMismatchError, match="0123abcd"):
        resolve_source(src.as_uri())
    assert not list(torch_home.iterdir())


def test_corrupted_cached_copy_is_detected(tmp_path, torch_home, tensors, cfg_dict):
    src = _weights(tmp_path / "server", tensors, cfg_dict, with_hash=True)
    cached = cached_download(src.as_uri())
    cached.write_bytes(cached.read_bytes()[:-1] + b"!")
    with pytest.raises(HashMismatchError, match="delete it to download again"):
        cached_download(src.as_uri())


def test_full_sha256_from_a_manifest(tmp_path, torch_home, tensors, cfg_dict):
    src = _weights(tmp_path / "server", tensors, cfg_dict)
    assert cached_download(src.as_uri(), sha256=sha256_file(src)).is_file()
    other = _weights(tmp_path / "server2", {"x": torch.ones(2)}, None, stem="other")
    with pytest.raises(HashMismatchError, match="expected sha256"):
        cached_download(other.as_uri(), sha256=sha256_file(src))
    assert not (torch_home / other.name).exists()


def test_missing_url_and_offline(tmp_path, torch_home):
    with pytest.raises(CheckpointNotFoundError, match="could not download"):
        cached_download((tmp_path / "absent.safetensors").as_uri())
    with pytest.raises(CheckpointNotFoundError, match="local_files_only"):
        cached_download("https://example.invalid/w.safetensors", local_files_only=True)


def test_bad_scheme(torch_home):
    with pytest.raises(ValueError, match="ftp.*valid schemes"):
        cached_download("ftp://example.invalid/w.safetensors")


def test_same_file_name_from_two_urls_is_not_confused(tmp_path, torch_home, tensors, cfg_dict):
    a = _weights(tmp_path / "a", tensors, cfg_dict)
    b = _weights(tmp_path / "b", {"w": torch.zeros(3)}, None)
    assert a.name == b.name == "model.safetensors"
    ra, rb = resolve_source(a.as_uri()), resolve_source(b.as_uri())
    assert ra.weights != rb.weights and ra.config == cfg_dict and rb.config is None
