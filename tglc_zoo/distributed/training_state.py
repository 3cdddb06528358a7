"""Training state of a group-parallel shard in single-process layout (what the trainer checkpoints).

A rank holds slices, so a single-process checkpoint needs a collective. :func:`gather_training_state`
(every rank) returns the model and optimizer state dicts exactly as a single-process run would have
them; :func:`scatter_training_state` loads such a pair into a shard and its optimizer;
:func:`localize_optimizer_state` slices optimizer state that was loaded into the full model before
it was sharded in place. :class:`~tglc_zoo.distributed.modes.GroupMode` uses them for the trainer.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import GroupParallelError
from .collectives import _all_gather, _run
from .group_parallel import GroupParallel

__all__ = ["gather_training_state", "scatter_training_state", "localize_optimizer_state"]


def _optimizer_params(optimizer: torch.optim.Optimizer, shard: GroupParallel) -> list[str]:
    names = {id(p): n for n, p in shard.module.named_parameters()}
    out = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in names:
                raise GroupParallelError("the optimizer holds a parameter that is not part of the shard; build it "
                                         "over the model passed to group_parallel(..., inplace=True) or over the shard")
            out.append(names[id(p)])
    return out


def gather_training_state(shard: GroupParallel, optimizer: torch.optim.Optimizer
                          ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Collective: ``(model state dict, optimizer state dict)`` in single-process layout, on every rank."""
    model_state = shard.full_state_dict()
    names = _optimizer_params(optimizer, shard)
    sharded = set(shard.plan.sharded)
    local = optimizer.state_dict()
    params = dict(shard.module.named_parameters())
    state: dict[int, dict[str, Any]] = {}
    for idx, name in enumerate(names):
        entry = local["state"].get(idx)
        if entry is None:
            continue
        full_entry: dict[str, Any] = {}
        for key, value in entry.items():
            if name in sharded and isinstance(value, torch.Tensor) and value.shape == params[name].shape:
                full = value.new_empty((shard.world_size * value.shape[0], *value.shape[1:]))
                _run("all-gather", _all_gather, full, value.contiguous(), shard.group, f"optimizer {key} of {name}")
                value = full
            full_entry[key] = value.clone() if isinstance(value, torch.Tensor) else value
        state[idx] = full_entry
    return model_state, {"state": state, "param_groups": local["param_groups"]}


def scatter_training_state(shard: GroupParallel, optimizer: torch.optim.Optimizer,
                           model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> None:
    """Load single-process model and optimizer state dicts into a shard and its optimizer (no communication)."""
    shard.load_full_state_dict(model_state)
    names = _optimizer_params(optimizer, shard)
    sharded = set(shard.plan.sharded)
    state: dict[int, dict[str, Any]] = {}
    for idx, entry in optimizer_state["state"].items():
        name = names[int(idx)]
        rows = shard.plan.local_slice
        state[int(idx)] = {k: (rows(v, shard.rank, name).clone()
                               if name in sharded and isinstance(v, torch.Tensor) and v.dim() > 0 else v)
                           for k, v in entry.items()}
    optimizer.load_state_dict({"state": state, "param_groups": optimizer_state["param_groups"]})


def localize_optimizer_state(shard: GroupParallel, optimizer: torch.optim.Optimizer) -> int:
    """Slice full-size optimizer state (loaded before an in-place shard, e.g. on resume) to this rank's rows.

    Returns how many tensors were sliced. Call once after ``group_parallel(model, inplace=True)``.
    """
    names = {id(p): n for n, p in shard.module.named_parameters()}
    sharded, sliced = set(shard.plan.sharded), 0
    for p, entry in optimizer.state.items():
        name = names.get(id(p))
        if name not in sharded:
            continue
        for key, value in list(entry.items()):
            if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == shard.world_size * p.shape[0]:
                entry[key] = shard.plan.local_slice(value, shard.rank, name).clone()
                sliced += 1
    return sliced
