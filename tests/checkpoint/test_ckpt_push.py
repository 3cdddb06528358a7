"""push_to_hub at the HTTP boundary: a local Hub endpoint receives the real requests."""
import pytest
import torch

from tglc_zoo.checkpoint import render_model_card, upload_checkpoint_folder, write_checkpoint_folder


@pytest.fixture
def ckpt(tmp_path, cfg_dict):
    return write_checkpoint_folder(tmp_path / "ckpt", {"w": torch.arange(6.0)}, cfg_dict, render_model_card(cfg_dict))


def test_upload_creates_repo_and_commits_every_file(ckpt, local_hub):
    url = upload_checkpoint_folder(ckpt, "org/my-model", private=True, commit_message="first")
    assert url.startswith(f"{local_hub.endpoint}/org/my-model/commit/")
    assert list(local_hub.repos) == ["org/my-model"] and local_hub.repos["org/my-model"].private
    assert set(local_hub.repos["org/my-model"].branches) == {"main"}
    (commit,) = local_hub.uploads()
    assert commit["revision"] == "main" and commit["summary"] == "first"
    assert commit["auth"] == "Bearer hf_test_token"
    assert commit["files"] == {p.name: p.read_bytes() for p in ckpt.iterdir()}
    assert local_hub.log.validated[0]["library_name"] == "tglc_zoo"


def test_upload_to_a_branch(ckpt, local_hub):
    upload_checkpoint_folder(ckpt, "hf-hub:org/m", revision="v2")
    assert set(local_hub.repos["org/m"].branches) == {"main", "v2"}
    assert [c["revision"] for c in local_hub.uploads()] == ["v2"]


def test_upload_errors(tmp_path, local_hub):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        upload_checkpoint_folder(tmp_path / "absent", "org/m")
    with pytest.raises(ValueError, match="not a Hugging Face repo id"):
        upload_checkpoint_folder(tmp_path, "not a repo")
    assert local_hub.log.requests == []


def test_push_model_then_load_what_the_hub_received(tmp_path, local_hub, monkeypatch):
    """tglc_zoo.push_to_hub(model) uploads a checkpoint that, fetched back, loads bit-identically."""
    from ckpt_helpers import grey, make_model

    import tglc_zoo
    from tests.support.hf_cache import populate_hf_cache

    model = make_model("wrn16_2_shuffle_n2")
    url = tglc_zoo.push_to_hub(model, "org/shuffle", metrics={"top1": 40.0}, dataset="synthetic",
                               commit_message="v1")
    assert url.startswith(local_hub.endpoint)
    (commit,) = local_hub.uploads()
    assert sorted(commit["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert local_hub.log.validated[0]["datasets"] == ["synthetic"]
    received = tmp_path / "received"
    received.mkdir()
    for name, data in commit["files"].items():
        (received / name).write_bytes(data)
    cache = tmp_path / "cache"
    populate_hf_cache(cache, "org/shuffle", received)
    loaded = tglc_zoo.from_pretrained("org/shuffle", cache_dir=cache, local_files_only=True).eval()
    with torch.no_grad():
        assert torch.equal(loaded(grey()), model(grey()))


def test_push_folder_rejects_save_arguments(ckpt, local_hub):
    import tglc_zoo

    with pytest.raises(TypeError, match="only apply when pushing a model"):
        tglc_zoo.push_to_hub(ckpt, "org/m", metrics={"top1": 1.0})
    tglc_zoo.push_to_hub(ckpt, "org/m")
    assert len(local_hub.uploads()) == 1
