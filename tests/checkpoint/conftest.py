"""Fixtures for checkpoint I/O tests: a Hugging Face cache built on disk and a local fake Hub endpoint."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from ckpt_helpers import populate_hf_cache


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """An empty HF cache that huggingface_hub uses by default, in offline mode; call it to add a repo."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def add(repo_id: str, folder: Path, revision: str = "main") -> str:
        return populate_hf_cache(cache, repo_id, folder, revision=revision)

    add.cache = cache  # type: ignore[attr-defined]
    yield add


@dataclass
class FakeHub:
    """What the local Hub endpoint received: repos created, branches, and committed files by revision."""

    endpoint: str
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    validated: list[dict[str, Any]] = field(default_factory=list)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            hub.requests.append(("GET", self.path, {}))
            self._reply(404, {"error": f"not served by the fake hub: {self.path}"})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization", "")
            hub.requests.append(("POST", self.path, {"auth": auth}))
            parts = self.path.strip("/").split("/")
            if self.path == "/api/validate-yaml":  # the Hub checks a README's front matter before a commit
                content = json.loads(raw)["content"]
                _, sep, rest = content.partition("---\n")
                front = yaml.safe_load(rest.partition("\n---")[0]) if sep else None
                if not isinstance(front, dict):
                    return self._reply(400, {"errors": [{"message": "README.md has no YAML front matter"}]})
                hub.validated.append(front)
                return self._reply(200, {"warnings": []})
            if self.path == "/api/repos/create":
                req = json.loads(raw)
                repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                private = req.get("visibility", "private" if req.get("private") else "public") == "private"
                hub.repos.setdefault(repo_id, {"private": private, "branches": {"main"}})
                return self._reply(200, {"url": f"{hub.endpoint}/{repo_id}"})
            if len(parts) >= 6 and parts[:2] == ["api", "models"]:
                repo_id, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                if repo_id not in hub.repos:
                    return self._reply(404, {"error": "Repository not found"})
                if action == "branch":
                    hub.repos[repo_id]["branches"].add(revision)
                    return self._reply(200, {})
                if action == "preupload":
                    files = json.loads(raw)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                if action == "commit":
                    lines = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
                    header = next(x["value"] for x in lines if x["key"] == "header")
                    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"])
                             for x in lines if x["key"] == "file"}
                    hub.commits.append({"repo_id": repo_id, "revision": revision, "summary": header["summary"],
                                        "files": files, "auth": auth})
                    oid = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
                    return self._reply(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{oid}",
                                             "commitOid": oid})
            self._reply(404, {"error": f"not served by the fake hub: {self.path}"})

    return Handler


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A Hub API endpoint on 127.0.0.1 speaking the create-repo / preupload / commit protocol."""
    from huggingface_hub import constants

    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    hub = FakeHub(endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def cfg_dict() -> dict[str, Any]:
    """A valid checkpoint config (no model needed)."""
    return dict(architecture="wrn16_2", num_classes=3, num_features=128, global_pool="avg",
                model_args=dict(conv_type="gc2l", groups=2, in_chans=1, drop_rate=0.0),
                pretrained_cfg=dict(input_size=(1, 12, 12), mean=(0.5,), std=(0.25,), crop_pct=1.0,
                                    interpolation="bilinear", first_conv="stem.conv", classifier="fc",
                                    label_names=["a", "b", "c"], num_classes=3, architecture="wrn16_2"))


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"stem.conv.weight": torch.randn(4, 1, 3, 3, generator=g), "fc.weight": torch.randn(3, 4, generator=g),
            "fc.bias": torch.randn(3, generator=g), "bn.num_batches_tracked": torch.tensor(7)}




@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Hugging Face-compatible endpoint on 127.0.0.1 (reads and writes), with HF_ENDPOINT, an empty
    HF_HOME cache and online mode pointing huggingface_hub at it."""
    from huggingface_hub import constants

    from tests.support.hf_endpoint import LocalHub

    with LocalHub() as hub:
        cache = tmp_path / "hf-home" / "hub"
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        # huggingface_hub builds its download URL template from HF_ENDPOINT at import
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        hub.cache = cache
        yield hub
