"""A local Hugging Face Hub endpoint on 127.0.0.1, speaking the real protocol that ``huggingface_hub`` uses.

Reads: ``HEAD``/``GET /<repo>/resolve/<revision>/<file>`` (``ETag``, ``X-Repo-Commit``,
``Content-Length``, ``Range``), the model-info API ``/api/models/<repo>[/revision/<rev>]`` and the tree
API ``/api/models/<repo>/tree/<rev>``. Writes: ``/api/repos/create``, ``/api/models/<repo>/branch/<b>``,
``/api/models/<repo>/preupload/<rev>`` (every file "regular") and ``/api/models/<repo>/commit/<rev>``
(NDJSON, base64 contents), ``/api/validate-yaml``. Errors carry the ``X-Error-Code`` headers the
client maps to ``RepositoryNotFoundError``/``RevisionNotFoundError``/``EntryNotFoundError``.

Repos live in memory: ``repos[repo_id] = Repo(branches={name: commit}, commits={commit: {path: bytes}})``.
``serve_folder`` seeds a repo from a folder (one commit on ``main``).
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


@dataclass
class HubLog:
    requests: list[tuple[str, str]] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)
    validated: list[dict[str, Any]] = field(default_factory=list)


class LocalHub:
    """The server: ``with LocalHub() as hub: ... hub.endpoint`` (a thread serving until the block ends)."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.log = HubLog()
        self.lock = threading.Lock()
        self.fail_paths: set[str] = set()  # resolve paths answered with a dropped connection (tests)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- repository state -----------------------------------------------------------------------------
    def commit(self, repo_id: str, revision: str, files: dict[str, bytes], summary: str = "", auth: str = "") -> str:
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            parent = repo.branches.get(revision)
            tree = dict(repo.commits.get(parent, {})) if parent else {}
            tree.update(files)
            sha = hashlib.sha1(repr((parent, sorted((k, git_blob_sha1(v)) for k, v in tree.items()),
                                     time.time_ns())).encode()).hexdigest()
            repo.commits[sha] = tree
            repo.branches[revision] = sha
            self.log.commits.append({"repo_id": repo_id, "revision": revision, "summary": summary,
                                     "files": dict(files), "sha": sha, "auth": auth})
            return sha

    def serve_folder(self, repo_id: str, folder: Path) -> str:
        files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
        return self.commit(repo_id, "main", files, "seed")

    def uploads(self) -> list[dict[str, Any]]:
        """The commits clients made (not the ``.gitattributes`` commit that creating a repo makes)."""
        return [c for c in self.log.commits if c["summary"] not in ("initial commit", "seed")]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        sha = repo.resolve(revision)
        return dict(repo.commits[sha]) if sha else {}


def _handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  content_type: str = "application/json", head: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(code, json.dumps(obj).encode(), headers)

        def _error(self, code: int, error_code: str, message: str, head: bool = False) -> None:
            self._send(code, json.dumps({"error": message}).encode(),
                       {"X-Error-Code": error_code, "X-Error-Message": message}, head=head)

        # -- reads ------------------------------------------------------------------------------------
        def _resolve(self, head: bool) -> None:
            path = unquote(urlparse(self.path).path).strip("/")
            parts = path.split("/")
            # <org>/<name>/resolve/<revision>/<file...>
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "RepoNotFound", f"no such route {path}", head)
            repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(401 if not head else 404, "RepoNotFound", f"Repository {repo_id} not found", head)
            sha = repo.resolve(revision)
            if sha is None:
                return self._error(404, "RevisionNotFound", f"Revision {revision} not found", head)
            data = repo.commits[sha].get(filename)
            if data is None:
                return self._error(404, "EntryNotFound", f"{filename} not found", head)
            headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"', "Accept-Ranges": "bytes"}
            if not head and path in hub.fail_paths:  # a server that drops the connection mid-file
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and not head:
                start_text, _, end_text = rng[6:].partition("-")
                start, end = int(start_text or 0), int(end_text) if end_text else len(data) - 1
                chunk = data[start:end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"
                return self._send(206, chunk, headers, "application/octet-stream")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _lookup(self, repo_id: str, revision: str) -> dict[str, bytes] | None:
            """The files of ``repo_id`` at ``revision``; ``None`` after answering the 404 the client expects."""
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                return None
            sha = repo.resolve(revision)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Revision {revision} not found")
                return None
            return repo.commits[sha]

        def _model_info(self, repo_id: str, revision: str) -> None:
            files = self._lookup(repo_id, revision)
            if files is None:
                return
            repo = hub.repos[repo_id]
            siblings = [{"rfilename": k, "size": len(v), "blobId": git_blob_sha1(v)} for k, v in sorted(files.items())]
            self._json(200, {"id": repo_id, "modelId": repo_id, "sha": repo.resolve(revision), "private": repo.private,
                             "siblings": siblings, "tags": [], "downloads": 0, "likes": 0,
                             "lastModified": "2026-11-29T00:00:00.000Z"})

        def _tree(self, repo_id: str, revision: str) -> None:
            files = self._lookup(repo_id, revision)
            if files is not None:
                self._json(200, [{"type": "file", "path": k, "size": len(v), "oid": git_blob_sha1(v)}
                                 for k, v in sorted(files.items())])

        def do_HEAD(self) -> None:
            hub.log.requests.append(("HEAD", self.path))
            self._resolve(head=True)

        def do_GET(self) -> None:
            hub.log.requests.append(("GET", self.path))
            path = unquote(urlparse(self.path).path).strip("/")
            parts = path.split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id, rest = "/".join(parts[2:4]), parts[4:]
                if not rest:
                    return self._model_info(repo_id, "main")
                if rest[0] == "revision" and len(rest) >= 2:
                    return self._model_info(repo_id, "/".join(rest[1:]))
                if rest[0] == "tree" and len(rest) >= 2:
                    return self._tree(repo_id, rest[1])
                return self._error(404, "RepoNotFound", f"no such route {path}")
            self._resolve(head=False)

        # -- writes -----------------------------------------------------------------------------------
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hub.log.requests.append(("POST", self.path))
            path = urlparse(self.path).path.strip("/")
            parts = path.split("/")
            if path == "api/validate-yaml":
                content = json.loads(raw)["content"]
                _, sep, rest = content.partition("---\n")
                front = yaml.safe_load(rest.partition("\n---")[0]) if sep else None
                if not isinstance(front, dict):
                    return self._json(400, {"errors": [{"message": "README.md has no YAML front matter"}]})
                hub.log.validated.append(front)
                return self._json(200, {"warnings": []})
            if path == "api/repos/create":
                req = json.loads(raw)
                repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                with hub.lock:
                    existed = repo_id in hub.repos
                    private = req.get("visibility", "private" if req.get("private") else "public") == "private"
                    repo = hub.repos.setdefault(repo_id, Repo(private=private))
                if not repo.branches:
                    attributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                    hub.commit(repo_id, "main", {".gitattributes": attributes}, "initial commit")
                if existed:
                    return self._json(409, {"error": "You already created this model repo",
                                            "url": f"{hub.endpoint}/{repo_id}"})
                return self._json(200, {"url": f"{hub.endpoint}/{repo_id}"})
            if len(parts) >= 6 and parts[:2] == ["api", "models"]:
                repo_id, action, revision = "/".join(parts[2:4]), parts[4], unquote("/".join(parts[5:]))
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                if action == "branch":
                    with hub.lock:
                        repo.branches.setdefault(revision, repo.branches["main"])
                    return self._json(200, {})
                if action == "preupload":
                    files = json.loads(raw)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in files]})
                if action == "commit":
                    lines = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
                    header = next(x["value"] for x in lines if x["key"] == "header")
                    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"])
                             for x in lines if x["key"] == "file"}
                    sha = hub.commit(repo_id, revision, files, header.get("summary", ""),
                                     self.headers.get("Authorization", ""))
                    return self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha})
            self._error(404, "RepoNotFound", f"not served by the local hub: {path}")

    return Handler
