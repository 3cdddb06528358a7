"""Where pretrained tags live: every tag has a canonical home on the Hub; the local mirror is used when it
exists, the Hub otherwise (sha256 checked either way); clear offline errors; Hub-readable cards; an idempotent
publisher."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import ModelCard, metadata_load

import tglc_zoo
from tglc_zoo.errors import CheckpointNotFoundError, HashMismatchError
from tglc_zoo.weights import hub_org, load_manifest

REPO = Path(__file__).resolve().parents[2]
TAGS = tglc_zoo.list_models(pretrained=True)
pytestmark = pytest.mark.skipif(not TAGS, reason="no shipped tags")


def _grey(model: torch.nn.Module) -> torch.Tensor:
    c, h, w = model.pretrained_cfg["input_size"]
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(_grey(model))


def test_every_tag_names_its_hub_repo_in_timm_and_the_manifest():
    entries = load_manifest()
    assert hub_org() == "tglc-zoo"
    for tag in TAGS:
        assert entries[tag]["hf_hub_id"] == f"tglc-zoo/{tag}"
        assert timm.models.get_pretrained_cfg(tag).hf_hub_id == f"tglc-zoo/{tag}"
        assert Path(entries[tag]["file"]).is_dir() and len(entries[tag]["sha256"]) == 64


def test_the_local_mirror_is_used_when_it_exists(local_hub):
    for tag in TAGS[:3]:
        tglc_zoo.create_model(tag, pretrained=True)
    assert local_hub.log.requests == []  # no download at all


def test_without_the_mirror_the_hub_serves_the_same_weights(local_hub):
    tag = TAGS[0]
    entry = load_manifest()[tag]
    local_hub.serve_folder(entry["hf_hub_id"], Path(entry["file"]))
    ref = tglc_zoo.create_model(tag, pretrained=True)
    for model in (tglc_zoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=None)),
                  timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=None)),
                  tglc_zoo.from_pretrained(entry["hf_hub_id"], revision="main"),  # a revision: the Hub, not the mirror
                  timm.create_model(f"hf-hub:{entry['hf_hub_id']}", pretrained=True)):
        assert torch.equal(_outputs(model), _outputs(ref))
    assert any("/resolve/" in path for _, path in local_hub.log.requests)
    snapshots = list(Path(local_hub.cache).rglob("snapshots/*/model.safetensors"))
    assert len(snapshots) == 1


def test_the_sha256_is_checked_for_hub_downloads(local_hub):
    tag, other = TAGS[0], TAGS[1]
    entries = load_manifest()
    local_hub.serve_folder(entries[tag]["hf_hub_id"], Path(entries[other]["file"]))  # the wrong weights
    with pytest.raises(HashMismatchError, match=entries[tag]["sha256"]):
        tglc_zoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=None))


def test_offline_with_nothing_cached_says_so(local_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    tag = TAGS[0]
    with pytest.raises(CheckpointNotFoundError) as err:
        tglc_zoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=None))
    msg = str(err.value)
    assert tag in msg and f"tglc-zoo/{tag}" in msg and "offline" in msg and "huggingface-cli download" in msg
    assert local_hub.log.requests == []


def test_a_broken_download_leaves_nothing_half_written(local_hub):
    tag = TAGS[0]
    entry = load_manifest()[tag]
    local_hub.serve_folder(entry["hf_hub_id"], Path(entry["file"]))
    local_hub.fail_paths.add(f"{entry['hf_hub_id']}/resolve/main/model.safetensors")
    with pytest.raises(Exception):  # noqa: B017 - huggingface_hub's own network error
        tglc_zoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=None))
    assert not list(Path(local_hub.cache).rglob("snapshots/*/model.safetensors"))
    local_hub.fail_paths.clear()
    model = tglc_zoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=None))
    assert torch.equal(_outputs(model), _outputs(tglc_zoo.create_model(tag, pretrained=True)))


@pytest.mark.parametrize("tag", TAGS)
def test_shipped_cards_are_hub_readable(tag):
    entry = load_manifest()[tag]
    card_path = Path(entry["file"]) / "README.md"
    card = ModelCard.load(card_path)
    meta = metadata_load(card_path)
    assert meta["library_name"] == "tglc_zoo" and meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "image-classification" and "timm" in meta["tags"]
    assert meta["datasets"] == ["zalando-datasets/fashion_mnist"]
    (result,) = card.data.eval_results
    assert result.metric_type == "accuracy" and result.metric_value == entry["metrics"]["top1"]
    assert result.dataset_type == "zalando-datasets/fashion_mnist" and card.data.model_name == tag


def _publish_zoo():
    spec = importlib.util.spec_from_file_location("publish_zoo", REPO / "scripts" / "publish_zoo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_publish_zoo_is_idempotent_and_has_a_dry_run(local_hub, capsys):
    publish = _publish_zoo()
    assert publish.main(["--dry-run"]) == 0
    assert local_hub.repos == {} and "would create the repo and upload" in capsys.readouterr().out
    assert publish.main([]) == 0
    out = capsys.readouterr().out
    assert len(local_hub.repos) == len(TAGS) and out.count("-> http://127.0.0.1") == len(TAGS)
    for tag in TAGS:
        entry = load_manifest()[tag]
        files = local_hub.files(entry["hf_hub_id"])
        assert {k: v for k, v in files.items() if k != ".gitattributes"} == {
            p.name: p.read_bytes() for p in Path(entry["file"]).iterdir()}
    commits = len(local_hub.log.commits)
    assert publish.main([]) == 0  # unchanged folders: no commit
    assert len(local_hub.log.commits) == commits and capsys.readouterr().out.count("is up to date") == len(TAGS)
    validated = {front["model-index"][0]["name"] for front in local_hub.log.validated}
    assert validated == set(TAGS)
    # published models load back through the Hub (a revision: not the in-repo mirror), as the wheel loads them
    assert torch.equal(_outputs(tglc_zoo.from_pretrained(f"tglc-zoo/{TAGS[0]}", revision="main")),
                       _outputs(tglc_zoo.create_model(TAGS[0], pretrained=True)))


def test_torch_hub_github_reference_uses_the_mirror(tmp_path):
    """torch.hub.load("<owner>/tglc_zoo:main", ...) with the repository in torch.hub's cache, offline."""
    import shutil

    hub_dir = tmp_path / "torch" / "hub"
    repo = hub_dir / "tglc-org_tglc_zoo_main"
    tag = TAGS[0]
    shutil.copytree(REPO / "tglc_zoo", repo / "tglc_zoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", repo / "hubconf.py")
    shutil.copytree(REPO / "hub" / tag, repo / "hub" / tag)
    arch = tag.rpartition(".")[0]
    code = (f"import torch\nm = torch.hub.load('tglc-org/tglc_zoo:main', {arch!r}, pretrained=True, trust_repo=True)\n"
            "import tglc_zoo, sys\nprint(tglc_zoo.__file__)\nprint(m.num_classes)\n"
            f"ref = tglc_zoo.create_model({tag!r}, pretrained=True)\n"
            f"x = torch.randn(2, *m.pretrained_cfg['input_size'])\n"
            "print(torch.equal(m.eval()(x), ref.eval()(x)))")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith(str(repo)) and lines[1] == "10" and lines[2] == "True"
    assert not (tmp_path / "hf").exists() or not list((tmp_path / "hf").rglob("*.safetensors"))
    json.loads((repo / "tglc_zoo" / "weights" / "manifest.json").read_text())  # the copied repo's own manifest
