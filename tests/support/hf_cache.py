"""huggingface_hub's cache layout on disk, for offline loading tests (no endpoint involved)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def populate_hf_cache(cache: Path, repo_id: str, folder: Path, *, revision: str = "main") -> str:
    """Lay ``folder``'s files out as huggingface_hub's cache does; return the commit hash used.

    ``models--org--name/blobs/<sha256>``, ``snapshots/<commit>/<file>`` (relative symlink to the blob)
    and ``refs/<revision>`` holding the commit hash.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    digest = hashlib.sha1()
    for f in sorted(folder.iterdir()):
        digest.update(f.name.encode() + f.read_bytes())
    commit = digest.hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in sorted(folder.iterdir()):
        blob = hashlib.sha256(f.read_bytes()).hexdigest()
        (repo / "blobs" / blob).write_bytes(f.read_bytes())
        link = snapshot / f.name
        if not link.exists():
            link.symlink_to(Path("..", "..", "blobs", blob))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return commit
