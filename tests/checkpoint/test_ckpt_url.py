"""Weights by URL: http(s) through the torch.hub cache with hash checks and timeouts; file:// read in place."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
from tglc_zoo.errors import DownloadTimeoutError
from tglc_zoo.util.hashing import sha256_file


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home" / "hub" / "checkpoints"


class _Server:
    """Serves files of ``root`` on 127.0.0.1; ``mode`` can make it stall or trickle."""

    def __init__(self, root: Path) -> None:
        self.root, self.mode, self.hits = root, "ok", 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.hits += 1
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                if server.mode == "stall_before_headers":
                    time.sleep(30)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.mode == "stall_after_headers":
                    time.sleep(30)
                elif server.mode == "trickle":
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.05)
                else:
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(tmp_path) -> Iterator[_Server]:
    root = tmp_path / "served"
    root.mkdir()
    s = _Server(root)
    yield s
    s.httpd.shutdown()


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


def test_http_url_is_cached_under_torch_hub_dir(server, torch_home, tensors, cfg_dict):
    src = _weights(server.root, tensors, cfg_dict, with_hash=True)
    resolved = resolve_source(f"{server.url}/{src.name}")
    assert resolved.weights == torch_home / src.name
    assert resolved.weights.read_bytes() == src.read_bytes() and resolved.config == cfg_dict
    src.unlink()  # a second resolve is served from the cache
    assert resolve_source(f"{server.url}/{src.name}").weights == torch_home / src.name
    assert server.hits == 1
    assert not [p for p in torch_home.iterdir() if p.name.startswith(".")]  # nothing half-written left


def test_file_url_is_read_in_place_and_never_stale(tmp_path, torch_home, tensors, cfg_dict):
    src = _weights(tmp_path / "files", tensors, cfg_dict)
    assert resolve_source(src.as_uri()).weights == src
    _weights(tmp_path / "files", {"w": torch.zeros(3)}, None)  # the source changes
    assert set(resolve_source(src.as_uri()).weights.parent.iterdir()) == {src}
    from tglc_zoo.checkpoint import load_weights

    assert set(load_weights(resolve_source(src.as_uri()).weights)) == {"w"}
    assert not torch_home.exists() or not list(torch_home.iterdir())


def test_wrong_hash_prefix_is_refused_and_not_cached(server, torch_home, tensors, cfg_dict):
    src = _weights(server.root, tensors, cfg_dict, with_hash=True, bad_hash=True)
    with pytest.raises(HashMismatchError, match="0123abcd"):
        resolve_source(f"{server.url}/{src.name}")
    assert not list(torch_home.iterdir())


def test_corrupted_cached_copy_is_detected(server, torch_home, tensors, cfg_dict):
    src = _weights(server.root, tensors, cfg_dict, with_hash=True)
    cached = cached_download(f"{server.url}/{src.name}")
    cached.write_bytes(cached.read_bytes()[:-1] + b"!")
    with pytest.raises(HashMismatchError, match="delete it to download again"):
        cached_download(f"{server.url}/{src.name}")


def test_full_sha256_from_a_manifest(server, torch_home, tensors, cfg_dict):
    src = _weights(server.root, tensors, cfg_dict)
    assert cached_download(f"{server.url}/{src.name}", sha256=sha256_file(src)).is_file()
    other = _weights(server.root / "o", {"x": torch.ones(2)}, None, stem="other")
    with pytest.raises(HashMismatchError, match="expected sha256"):
        cached_download(f"{server.url}/o/{other.name}", sha256=sha256_file(src))
    assert not list(torch_home.rglob(other.name))


def test_missing_url_and_offline(server, tmp_path, torch_home):
    with pytest.raises(CheckpointNotFoundError, match="could not download.*404"):
        cached_download(f"{server.url}/absent.safetensors")
    with pytest.raises(CheckpointNotFoundError, match="no such file"):
        cached_download((tmp_path / "absent.safetensors").as_uri())
    with pytest.raises(CheckpointNotFoundError, match="local_files_only"):
        cached_download("https://example.invalid/w.safetensors", local_files_only=True)


def test_bad_scheme(torch_home):
    with pytest.raises(ValueError, match="ftp.*valid schemes"):
        cached_download("ftp://example.invalid/w.safetensors")


@pytest.mark.parametrize("mode", ["stall_before_headers", "stall_after_headers", "trickle"])
def test_a_stalled_or_trickling_server_times_out(server, torch_home, tensors, cfg_dict, mode, monkeypatch):
    src = _weights(server.root, tensors, cfg_dict)
    server.mode = mode
    monkeypatch.setenv("TGLC_ZOO_DOWNLOAD_TIMEOUT", "1")
    t0 = time.monotonic()
    with pytest.raises(DownloadTimeoutError, match=r"(no answer|stalled).*TGLC_ZOO_DOWNLOAD_TIMEOUT"):
        resolve_source(f"{server.url}/{src.name}")
    assert time.monotonic() - t0 < 10
    assert not list(torch_home.rglob("*.safetensors")) and not list(torch_home.rglob(".*"))


def test_timeout_setting_is_checked(monkeypatch, server, torch_home):
    monkeypatch.setenv("TGLC_ZOO_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="TGLC_ZOO_DOWNLOAD_TIMEOUT='soon' is not a number"):
        cached_download(f"{server.url}/x.safetensors")
