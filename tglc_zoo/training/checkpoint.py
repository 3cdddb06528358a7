"""Training checkpoints: plain containers and tensors only, written atomically, read with
``torch.load(weights_only=True)``."""
from __future__ import annotations

import collections
import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import CheckpointNotFoundError, CorruptCheckpointError
from ..util.atomic import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "atomic_torch_save", "load_checkpoint", "capture_rng_state",
           "restore_rng_state", "plain_scheduler_state", "restore_scheduler_state", "resolve_resume_path"]

CHECKPOINT_FORMAT = "tglc_zoo.train/1"
_REQUIRED = ("format", "epoch", "model", "optimizer", "scheduler", "rng", "config", "history")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsynced, then renamed over it."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def resolve_resume_path(resume: str | os.PathLike[str]) -> Path:
    """A run folder means its ``checkpoints/last.pt``; a file is used as it is."""
    p = Path(resume).expanduser()
    if p.is_dir():
        cand = p / "checkpoints" / "last.pt"
        if not cand.is_file():
            raise CheckpointNotFoundError(f"--resume {str(resume)!r}: no checkpoint at {cand} (the run never "
                                          "finished an "
                                  "epoch, or this is not a run folder)")
        return cand
    if not p.is_file():
        raise CheckpointNotFoundError(f"--resume {str(resume)!r}: no such file or run folder")
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a training checkpoint; any damage raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CorruptCheckpointError(f"cannot read checkpoint {path}: it is corrupt, truncated or not a torch file "
                              f"({type(exc).__name__}: {str(exc)[:200]}). Resume from another checkpoint "
                              f"(e.g. {path.parent / 'best.pt'}) or start a new run.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CorruptCheckpointError(f"{path} is not a tglc_zoo training checkpoint (format {found!r}, expected "
                              f"{CHECKPOINT_FORMAT!r}); to fine-tune published weights use --pretrained")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CorruptCheckpointError(f"checkpoint {path} lacks {missing}")
    return ckpt


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the loop touches, as tensors and plain numbers."""
    py_version, py_state, py_gauss = random.getstate()
    # the global RandomState (MT19937) gives the legacy tuple; numpy's stubs pick the dict overload
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = cast(
        "tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def plain_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """Scheduler state with ``Counter`` turned into a plain dict (the ``milestones`` of MultiStepLR)."""
    return {k: (dict(v) if isinstance(v, collections.Counter) else v) for k, v in state.items()}


def restore_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict[str, Any]) -> None:
    scheduler.load_state_dict(dict(state))
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        scheduler.milestones = collections.Counter(scheduler.milestones)
