"""Per-rank checkpoint files: a full state dict ⇄ N ``rank-KKKKK-of-NNNNN.safetensors`` + ``group_parallel.json``.

Offline (no process group): :func:`save_rank_files` splits a single-process state dict, and
:func:`merge_rank_files` rebuilds it, so a model trained group-parallel publishes the same checkpoint
folder as any other (write the merged dict, or :meth:`GroupParallel.full_state_dict` on rank 0, with
:func:`tglc_zoo.checkpoint.folder.write_checkpoint_folder`). Online: :func:`save_shard_files` lets every rank
write its own file without gathering anything (for models too large for one process).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import torch.distributed as dist

from ..checkpoint.safetensors_io import load_weights, read_header, save_weights
from ..util.atomic import atomic_directory, atomic_path, atomic_write
from .plan import GroupParallelError, ShardPlan

if TYPE_CHECKING:
    from .group_parallel import GroupParallel

__all__ = ["PLAN_NAME", "rank_file_name", "save_rank_files", "merge_rank_files", "load_rank_state_dict",
           "read_plan", "save_shard_files", "load_slices"]

PLAN_NAME = "group_parallel.json"
RANK_KEY, WORLD_KEY = "tglc_zoo.rank", "tglc_zoo.world_size"
"""Each rank file's safetensors metadata records which rank of which world size it holds."""


def _rank_metadata(rank: int, world_size: int) -> dict[str, str]:
    return {RANK_KEY: str(rank), WORLD_KEY: str(world_size)}


def rank_file_name(rank: int, world_size: int) -> str:
    return f"rank-{rank:05d}-of-{world_size:05d}.safetensors"


def _folder_files(world_size: int) -> list[str]:
    return [PLAN_NAME] + [rank_file_name(r, world_size) for r in range(world_size)]


def save_rank_files(state_dict: Mapping[str, torch.Tensor], plan: ShardPlan, folder: str | Path) -> Path:
    """Split a single-process state dict into ``plan.world_size`` per-rank safetensors files (atomic folder)."""
    folder = Path(folder).absolute()
    with atomic_directory(folder, replaceable=_folder_files(plan.world_size)) as tmp:
        for rank in range(plan.world_size):
            save_weights(tmp / rank_file_name(rank, plan.world_size), plan.split_rank(state_dict, rank),
                         extra_metadata=_rank_metadata(rank, plan.world_size))
        (tmp / PLAN_NAME).write_text(plan.to_json(), encoding="utf-8")
    return folder


def read_plan(folder: str | Path) -> ShardPlan:
    path = Path(folder) / PLAN_NAME
    if not path.is_file():
        raise GroupParallelError(f"{folder} is not a group-parallel checkpoint: {PLAN_NAME} is missing")
    return ShardPlan.from_json(path.read_text(encoding="utf-8"))


def load_rank_state_dict(folder: str | Path, rank: int, world_size: int | None = None,
                         map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Rank ``rank``'s tensors; ``world_size`` (when given) must match the files'."""
    plan = read_plan(folder)
    if world_size is not None and world_size != plan.world_size:
        raise GroupParallelError(f"{folder} holds {plan.world_size} rank files, but the world size is {world_size}")
    if not 0 <= rank < plan.world_size:
        raise GroupParallelError(f"rank {rank} out of range; {folder} holds ranks 0..{plan.world_size - 1}")
    path = Path(folder) / rank_file_name(rank, plan.world_size)
    if not path.is_file():
        raise GroupParallelError(f"rank file {path.name} is missing from {folder}")
    meta = read_header(path).metadata
    recorded = (meta.get(RANK_KEY), meta.get(WORLD_KEY))
    if recorded != (None, None) and recorded != (str(rank), str(plan.world_size)):
        raise GroupParallelError(f"{path} holds rank {recorded[0]} of {recorded[1]} (its metadata), not rank {rank} of "
                                 f"{plan.world_size} as its name says: rank files were swapped or renamed")
    return load_weights(path, map_location=map_location)


def merge_rank_files(folder: str | Path) -> dict[str, torch.Tensor]:
    """The single-process state dict (same keys as ``create_model``) from a folder of rank files."""
    plan = read_plan(folder)
    return plan.merge([load_rank_state_dict(folder, r) for r in range(plan.world_size)])


def save_shard_files(shard: torch.nn.Module, folder: str | Path) -> Path:
    """Collective: every rank of a :class:`GroupParallel` writes its own file (atomically) into ``folder``.

    Rank 0 writes ``group_parallel.json`` last, after a barrier, so its presence marks a complete set.
    ``folder`` must be visible to every rank (one machine, or a shared file system).
    """
    shard = cast("GroupParallel", shard)  # what callers pass: its plan, rank, group and local_state_dict are used
    plan: ShardPlan = shard.plan
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    if shard.rank == 0:
        (folder / PLAN_NAME).unlink(missing_ok=True)
    dist.barrier(group=shard.group)
    state = shard.local_state_dict()
    with atomic_path(folder / rank_file_name(shard.rank, plan.world_size)) as tmp:
        save_weights(tmp, state, extra_metadata=_rank_metadata(shard.rank, plan.world_size))
    dist.barrier(group=shard.group)
    if shard.rank == 0:
        atomic_write(folder / PLAN_NAME, plan.to_json())
    dist.barrier(group=shard.group)
    return folder


def load_slices(shard: torch.nn.Module, path: str | Path) -> None:
    """Load a single-process safetensors file into a shard, reading only this rank's rows of every split tensor.

    Strict: the file must hold every key of the model with the single-process shape.
    """
    from safetensors import safe_open

    shard = cast("GroupParallel", shard)
    plan: ShardPlan = shard.plan
    sharded = set(plan.sharded)
    local = shard.module.state_dict(keep_vars=True)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        missing, unexpected = sorted(set(local) - keys), sorted(keys - set(local))
        if missing or unexpected:
            raise GroupParallelError(f"{path} does not hold this model's tensors: missing {missing[:5]}, unexpected "
                                     f"{unexpected[:5]}")
        with torch.no_grad():
            for key, target in local.items():
                sl = f.get_slice(key)
                full = tuple(sl.get_shape())
                want = (target.shape[0] * plan.world_size, *target.shape[1:]) if key in sharded else tuple(target.shape)
                if full != tuple(want):
                    raise GroupParallelError(f"{path}: {key!r} has shape {full}, the model's is {tuple(want)}")
                if key in sharded:
                    rows = target.shape[0]
                    value = sl[shard.rank * rows:(shard.rank + 1) * rows]
                else:
                    value = f.get_tensor(key) if not full else sl[:]  # a 0-dim tensor cannot be sliced
                target.copy_(value)
