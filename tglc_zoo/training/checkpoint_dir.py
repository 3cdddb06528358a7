"""A run's ``checkpoints/`` folder: step-level checkpoints, the last K kept, and which one is latest.

Two layouts, chosen by the parallel mode:

* **single-process layout** (one process, data parallel): each save is one file ``step-SSSSSSSS.pt``
  (:func:`~.checkpoint.atomic_torch_save`); ``last.pt`` and ``best.pt`` are hard links to the latest and
  the best one (copies where the file system has no hard links);
* **sharded** (group parallel): each save is a DCP folder ``step-SSSSSSSS/``
  (:mod:`tglc_zoo.distributed.sharded_checkpoint`) in which rank 0 also writes ``trainer.pt`` — everything
  that is not a tensor slice: epoch, step, scheduler, history, config, optimizer hyper-parameters.

In both, ``latest.json`` (and ``best.json``) name the entry and its step; they are replaced atomically
after the entry is complete, so a crash during a save leaves the previous checkpoint in charge. The
``keep`` newest entries are kept (and the best); older ones are deleted.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointNotFoundError, CorruptCheckpointError
from ..util.atomic import atomic_path, atomic_write_json, clear_stale_temporaries
from .checkpoint import CHECKPOINT_FORMAT, atomic_torch_save

__all__ = ["CheckpointDir", "TRAINER_STATE", "entry_name", "latest_entry", "resolve_resume_path", "load_checkpoint",
           "is_sharded"]

TRAINER_STATE = "trainer.pt"
# what every checkpoint holds; a single-process-layout file also holds the tensors of both layouts' "model"
_REQUIRED = ("format", "epoch", "scheduler", "rng", "config", "history")
_REQUIRED_FILE = ("model", "optimizer")
_LATEST, _BEST = "latest.json", "best.json"


def entry_name(step: int) -> str:
    return f"step-{step:08d}"


def _link(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src`` (hard link, or a copy), in one atomic replace."""
    with atomic_path(dst) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _read_pointer(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(f"{path} is damaged ({e}); resume from a checkpoint folder or file "
                                     "explicitly") from None
    if not isinstance(value, dict) or not isinstance(value.get("entry"), str):
        raise CorruptCheckpointError(f"{path} does not name a checkpoint entry")
    return value


def latest_entry(run_dir: str | os.PathLike[str], which: str = "last") -> Path | None:
    """The run's latest (``which="last"``) or best checkpoint: a ``.pt`` file or a sharded folder; ``None``
    when the run has none yet."""
    ckpts = Path(run_dir) / "checkpoints"
    pointer = _read_pointer(ckpts / (_LATEST if which == "last" else _BEST))
    if pointer is not None:
        entry = ckpts / pointer["entry"]
        if entry.exists():
            return entry
    legacy = ckpts / f"{which}.pt"  # runs written before step-level checkpoints
    return legacy if legacy.is_file() else None


class CheckpointDir:
    """Writes the entries of ``<run>/checkpoints`` (rank 0 only; see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike[str], keep: int = 1) -> None:
        if keep < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
        self.root = Path(run_dir) / "checkpoints"
        self.keep = keep

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        clear_stale_temporaries(self.root)  # left by a process killed mid-save
        for partial in self.root.glob("*.partial"):
            shutil.rmtree(partial, ignore_errors=True)

    def sharded_path(self, step: int) -> Path:
        return self.root / entry_name(step)

    def save_file(self, state: dict[str, Any], step: int, is_best: bool) -> Path:
        """Single-process layout: ``step-S.pt``, then ``last.pt`` (and ``best.pt``) pointing at it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{entry_name(step)}.pt"
        atomic_torch_save(state, path)
        _link(path, self.root / "last.pt")
        if is_best:
            _link(path, self.root / "best.pt")
        self._commit(path.name, step, is_best)
        return path

    def write_trainer_state(self, folder: Path, state: dict[str, Any]) -> None:
        """Sharded layout: rank 0's part of the entry (called inside the not yet renamed folder)."""
        atomic_torch_save(state, folder / TRAINER_STATE)

    def commit_sharded(self, step: int, is_best: bool) -> None:
        self._commit(entry_name(step), step, is_best)

    def _commit(self, name: str, step: int, is_best: bool) -> None:
        atomic_write_json(self.root / _LATEST, {"entry": name, "step": step})
        if is_best:
            atomic_write_json(self.root / _BEST, {"entry": name, "step": step})
        self._prune()

    def _prune(self) -> None:
        best = _read_pointer(self.root / _BEST)
        keep_best = best["entry"] if best else None
        entries = sorted(p for p in self.root.iterdir() if p.name.startswith("step-") and
                         not p.name.endswith(".partial") and ".tmp-" not in p.name)
        for old in entries[:-self.keep]:
            if old.name == keep_best and old.is_dir():
                continue  # a sharded best has no other copy
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)  # last.pt / best.pt keep their own link


def check_entry(path: Path) -> None:
    """A sharded entry is complete when DCP's metadata and rank 0's trainer state are both there."""
    if path.is_dir() and not ((path / ".metadata").is_file() and (path / TRAINER_STATE).is_file()):
        raise CheckpointNotFoundError(f"{path} is not a complete sharded checkpoint (no .metadata or "
                                      f"{TRAINER_STATE}); resume from an earlier entry")


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """Whether a resolved checkpoint is a sharded (DCP) folder rather than a single-process-layout file."""
    return Path(path).is_dir()


def resolve_resume_path(resume: str | os.PathLike[str]) -> Path:
    """A run folder means its latest checkpoint; a checkpoint file or sharded folder is used as it is."""
    p = Path(resume).expanduser()
    if p.is_dir() and (p / "checkpoints").is_dir():
        entry = latest_entry(p)
        if entry is None:
            raise CheckpointNotFoundError(f"--resume {str(resume)!r}: {p / 'checkpoints'} holds no checkpoint yet "
                                          "(the run never reached one; --resume auto starts it afresh)")
        check_entry(entry)
        return entry
    if p.is_dir() and (p / TRAINER_STATE).is_file():
        check_entry(p)
        return p
    if p.is_dir():
        raise CheckpointNotFoundError(f"--resume {str(resume)!r}: no checkpoint there (not a run folder: it has no "
                                      "checkpoints/, and it is not a sharded checkpoint)")
    if not p.is_file():
        raise CheckpointNotFoundError(f"--resume {str(resume)!r}: no such file, sharded checkpoint or run folder")
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a training checkpoint (a ``.pt`` file, or a sharded folder's ``trainer.pt``; its
    tensors stay on disk, see :func:`tglc_zoo.distributed.sharded_checkpoint.read_full_tensors`); any damage
    raises :class:`~tglc_zoo.errors.CheckpointError`."""
    path = Path(path)
    sharded = path.is_dir()
    file = path / TRAINER_STATE if sharded else path
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True, mmap=not sharded)
    except Exception as exc:
        raise CorruptCheckpointError(f"cannot read checkpoint {file}: it is corrupt, truncated or not a torch file "
                                     f"({type(exc).__name__}: {str(exc)[:200]}). Resume from another checkpoint "
                                     f"(e.g. {path.parent / 'best.pt'}) or start a new run.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CorruptCheckpointError(f"{file} is not a tglc_zoo training checkpoint (format {found!r}, expected "
                                     f"{CHECKPOINT_FORMAT!r}); to fine-tune published weights use --pretrained")
    missing = [k for k in _REQUIRED + (() if sharded else _REQUIRED_FILE) if k not in ckpt]
    if missing:
        raise CorruptCheckpointError(f"checkpoint {file} lacks {missing}")
    if sharded:
        ckpt["sharded"] = str(path)
    return ckpt
