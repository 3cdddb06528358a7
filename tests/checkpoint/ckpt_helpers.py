"""Helpers shared by the checkpoint tests (imported by name: tests/checkpoint is on sys.path under pytest)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch


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


CONV_VARIANTS = {"sc": "wrn16_2", "gc": "wrn16_2_gc_n2", "gc2l": "wrn16_2_gc2l_n2",
                 "shuffle": "wrn16_2_shuffle_n2", "flgc": "wrn16_2_flgc_n2"}


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic a distinct random value, so no route can pass by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=g) * 0.3
                t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return model.eval()


def make_model(name: str, seed: int = 0, **kwargs: Any) -> torch.nn.Module:
    import tglc_zoo

    kwargs = {"num_classes": 3, "in_chans": 1, **kwargs}
    return randomized(tglc_zoo.create_model(name, **kwargs), seed)


def grey(batch: int = 2, chans: int = 1, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(seed))
