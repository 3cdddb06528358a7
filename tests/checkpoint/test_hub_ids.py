"""A Hub id whose repo is one of the zoo's tags (``tglc-zoo/<model>.<tag>``) loads from the in-repo mirror when it
exists — sha256 checked, no network at all — and from the Hub otherwise; a failed Hub load keeps the network's
own cause and names the tag."""
from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch

import tglc_zoo
from tglc_zoo.errors import CheckpointNotFoundError, HashMismatchError
from tglc_zoo.weights import MANIFEST_ENV, _read_all, load_manifest

TAGS = tglc_zoo.list_models(pretrained=True)
pytestmark = pytest.mark.skipif(not TAGS, reason="no shipped tags")
PROBE = "wrn16_2.probe"


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, *model.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Add the tag ``wrn16_2.probe`` (Hub home ``tglc-zoo/wrn16_2.probe``) through an extra manifest:
    ``probe(mirror=True/False, sha256=...)`` writes it; its mirror is a copy of the shipped wrn16_2.fmnist."""
    shipped = load_manifest()["wrn16_2.fmnist"]

    def add(*, mirror: bool, sha256: str | None = None) -> dict:
        folder = tmp_path / "hub" / PROBE
        if mirror:
            shutil.copytree(shipped["file"], folder)
        entry = {k: v for k, v in shipped.items() if k not in ("file", "hf_hub_id")}
        entry.update(file=f"hub/{PROBE}", hf_hub_id=f"tglc-zoo/{PROBE}", sha256=sha256 or shipped["sha256"])
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps({"format": 1, "weights": {PROBE: entry}}))
        monkeypatch.setenv(MANIFEST_ENV, str(path))
        _read_all.cache_clear()
        return load_manifest()[PROBE]

    yield add
    monkeypatch.delenv(MANIFEST_ENV)
    _read_all.cache_clear()


@pytest.mark.parametrize("spelling", ["tglc-zoo/{}", "hf-hub:tglc-zoo/{}"])
def test_a_tags_hub_id_loads_from_the_mirror_without_any_request(local_hub, spelling):
    tag = TAGS[0]
    ref = _outputs(tglc_zoo.create_model(tag, pretrained=True))
    for model in (tglc_zoo.from_pretrained(spelling.format(tag)),
                  tglc_zoo.create_model(f"hf-hub:tglc-zoo/{tag}", pretrained=True)):
        assert torch.equal(_outputs(model), ref)
    assert local_hub.log.requests == []  # the endpoint is online and empty: nothing was asked of it


def test_offline_or_unreachable_the_mirror_loads_at_once(monkeypatch):
    from huggingface_hub import constants

    tag = TAGS[0]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # nothing listens there
    start = time.perf_counter()
    model = tglc_zoo.from_pretrained(f"tglc-zoo/{tag}")
    assert time.perf_counter() - start < 5  # huggingface_hub would retry each file for about 23 s
    assert torch.equal(_outputs(model), _outputs(tglc_zoo.create_model(tag, pretrained=True)))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert torch.equal(_outputs(tglc_zoo.from_pretrained(f"hf-hub:tglc-zoo/{tag}")), _outputs(model))


def test_the_mirror_is_checked_against_the_manifest_sha256(probe):
    probe(mirror=True, sha256="0" * 64)
    with pytest.raises(HashMismatchError, match="0" * 64):
        tglc_zoo.from_pretrained(f"tglc-zoo/{PROBE}")


def test_a_revision_asks_for_the_hub(probe, local_hub):
    entry = probe(mirror=True)
    local_hub.serve_folder(entry["hf_hub_id"], Path(entry["file"]))
    tglc_zoo.from_pretrained(f"tglc-zoo/{PROBE}", revision="main")
    assert any("/resolve/main/model.safetensors" in path for _, path in local_hub.log.requests)


def test_without_the_mirror_the_hub_serves_it_checked_against_the_manifest(probe, local_hub):
    entry = probe(mirror=False)
    assert not Path(entry["file"]).exists()
    shipped = load_manifest()
    local_hub.serve_folder(entry["hf_hub_id"], Path(shipped["wrn16_2.fmnist"]["file"]))
    ref = _outputs(tglc_zoo.create_model("wrn16_2.fmnist", pretrained=True))
    assert torch.equal(_outputs(tglc_zoo.from_pretrained(f"tglc-zoo/{PROBE}")), ref)
    assert torch.equal(_outputs(timm.create_model(f"hf-hub:tglc-zoo/{PROBE}", pretrained=True)), ref)
    other = next(t for t in TAGS if t != "wrn16_2.fmnist")
    local_hub.serve_folder(entry["hf_hub_id"], Path(shipped[other]["file"]))  # a new commit: other weights
    with pytest.raises(HashMismatchError, match=entry["sha256"]):
        tglc_zoo.from_pretrained(f"tglc-zoo/{PROBE}", cache_dir=str(local_hub.cache / "fresh"))


def test_offline_without_the_mirror_names_the_tag_and_the_offline_flag(probe, hf_cache):
    probe(mirror=False)
    with pytest.raises(CheckpointNotFoundError) as err:
        tglc_zoo.from_pretrained(f"tglc-zoo/{PROBE}")
    msg = str(err.value)
    assert f"home of the pretrained tag '{PROBE}'" in msg and "in-repo mirror" in msg
    assert f"tglc_zoo.create_model('{PROBE}', pretrained=True)" in msg
    assert "offline for the Hub (HF_HUB_OFFLINE is set)" in msg


@pytest.mark.parametrize("source", [f"tglc-zoo/{PROBE}", "org/absent"])
def test_an_unreachable_hub_keeps_the_network_cause(probe, monkeypatch, tmp_path, source):
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub import constants

    probe(mirror=False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)  # huggingface_hub's backoff: skip the waiting
    with pytest.raises(CheckpointNotFoundError) as err:
        tglc_zoo.from_pretrained(source, cache_dir=str(tmp_path / "cache"))
    msg = str(err.value)
    assert f"{endpoint} could not be reached (" in msg and "Connection refused" in msg, msg
    assert (f"pretrained tag '{PROBE}'" in msg) == source.endswith(PROBE)
