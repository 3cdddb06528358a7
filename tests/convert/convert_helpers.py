"""Helpers shared by the conversion tests (imported by name: tests/convert is on sys.path under pytest)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Distinct random parameters and BN statistics, so copying the wrong tensor cannot pass by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=g) * 0.3
                t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return model.eval()


def images(batch: int = 4, size: int = 12, seed: int = 1, chans: int = 1) -> torch.Tensor:
    return torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(seed))


def populate_hf_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """huggingface_hub's cache layout: blobs by sha256, a snapshot of symlinks, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(b"".join(f.read_bytes() for f in sorted(folder.iterdir()))).hexdigest()
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / commit).mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        blob = hashlib.sha256(f.read_bytes()).hexdigest()
        (repo / "blobs" / blob).write_bytes(f.read_bytes())
        (repo / "snapshots" / commit / f.name).symlink_to(Path("..", "..", "blobs", blob))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
