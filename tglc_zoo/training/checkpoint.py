"""Training checkpoints: plain containers and tensors only, written atomically, read with
``torch.load(weights_only=True)``; the random-number generators' states, as plain data or as tensors (for
sharded checkpoints, which hold tensors only)."""
from __future__ import annotations

import collections
import os
import random
from typing import Any, cast

import numpy as np
import torch

from ..util.atomic import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "atomic_torch_save", "capture_rng_state", "restore_rng_state", "rng_to_tensors",
           "rng_from_tensors", "plain_scheduler_state", "restore_scheduler_state"]

CHECKPOINT_FORMAT = "tglc_zoo.train/1"


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsynced, then renamed over it."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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


def rng_to_tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """:func:`capture_rng_state`'s result as named tensors (what a sharded checkpoint can hold)."""
    py, nps = state["python"], state["numpy"]
    out = {"torch": state["torch"], "python.state": py["state"],
           "python.meta": torch.tensor([float(py["version"]), float(py["gauss"] is not None),
                                        float(py["gauss"] or 0.0)], dtype=torch.float64),
           "numpy.keys": nps["keys"],
           "numpy.meta": torch.tensor([float(nps["pos"]), float(nps["has_gauss"]), float(nps["gauss"])],
                                      dtype=torch.float64)}
    for i, t in enumerate(state.get("cuda", [])):
        out[f"cuda.{i}"] = t
    return out


def rng_from_tensors(t: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The inverse of :func:`rng_to_tensors` (the state :func:`restore_rng_state` takes)."""
    version, has_gauss, gauss = t["python.meta"].tolist()
    pos, np_has_gauss, np_gauss = t["numpy.meta"].tolist()
    state: dict[str, Any] = {
        "torch": t["torch"].to(torch.uint8),
        "python": {"version": int(version), "state": t["python.state"], "gauss": gauss if has_gauss else None},
        "numpy": {"name": "MT19937", "keys": t["numpy.keys"], "pos": int(pos), "has_gauss": int(np_has_gauss),
                  "gauss": float(np_gauss)},
    }
    cuda = [t[k] for k in sorted((k for k in t if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))]
    if cuda:
        state["cuda"] = cuda
    return state
