"""``group_parallel(model)``: this rank's shard of a GC/GC-2L model (the paper's section 3.2, Figure 2).

Process k of N holds group k of every replaced layer and its BatchNorm channels, and output channels
k of the stem (or, with ``shard_stem=False``, the whole stem); the classifier is replicated.
``forward`` takes the full batch (identical on every rank) and returns the full logits (identical on
every rank):

    stem (output channels k) → body (sharded; one all-gather of N channels per GC-2L layer, none per
    GC layer) → final block (sharded) → global pool → all-gather features → dropout (same mask
    everywhere) → classifier (replicated)

Every rank computes the same loss from the same logits; gradients are then exact without any
gradient all-reduce (see :mod:`.collectives` for why each backward is what it is).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..layers import TwoLevelGroupConv2d
from ..models._base import ClassifierModel
from .collectives import CollectiveError, CommStats, _all_gather, _run, gather_replicated, shard_replicated
from .plan import GroupParallelError, ShardPlan, check_supported, make_plan, walk
from .shard import LocalTwoLevelConv2d, SyncedDropout, local_batchnorm, local_conv

__all__ = ["GroupParallel", "group_parallel"]


def _seed_from_rank0(group: dist.ProcessGroup | None) -> int:
    t = torch.tensor([torch.initial_seed() % (2 ** 62)], dtype=torch.int64)
    if dist.get_backend(group) == "nccl":
        t = t.cuda()
    src = 0 if group is None else dist.get_global_rank(group, 0)
    dist.broadcast(t, src=src, group=group)
    return int(t.item())


def _local_module(model: ClassifierModel, rank: int, world: int, group: dist.ProcessGroup | None,
                  stats: CommStats, seed: int, shard_stem: bool, inplace: bool) -> ClassifierModel:
    """``model`` with its split leaves replaced by rank ``rank``'s slices: a copy, or ``model`` itself."""
    new: dict[str, nn.Module] = {}
    old: dict[str, nn.Module] = {}
    for name, mod, kind in walk(model, world, shard_stem):
        if kind == "two_level":
            assert isinstance(mod, TwoLevelGroupConv2d)
            new[name] = LocalTwoLevelConv2d(mod, rank, world, group, stats, name, reuse=inplace)
        elif kind == "group_conv":
            assert isinstance(mod, nn.Conv2d)
            new[name] = local_conv(mod, rank, world, reuse=inplace)
        elif kind == "stem_conv":
            assert isinstance(mod, nn.Conv2d)
            new[name] = local_conv(mod, rank, world, in_channels=mod.in_channels, groups=1, reuse=inplace)
        elif kind == "batchnorm":
            assert isinstance(mod, nn.BatchNorm2d)
            new[name] = local_batchnorm(mod, rank, world, reuse=inplace)
        else:
            continue
        new[name].train(mod.training)
        old[name] = mod
    head_drop = getattr(model, "head_drop", None)
    if isinstance(head_drop, nn.Dropout):
        new["head_drop"] = SyncedDropout(head_drop.p, seed).train(head_drop.training)
        old["head_drop"] = head_drop
    if not inplace:  # deepcopy everything else; the split leaves are taken from the memo, not copied
        return copy.deepcopy(model, {id(old[k]): v for k, v in new.items()})
    for name, module in new.items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, module)
    return model


class GroupParallel(nn.Module):
    """This rank's shard of a group-parallel model. Its parameters are rank k's slices.

    Attributes:
        module: the sharded copy of the model (same state-dict keys as the single-process model).
        plan: which keys are split along dim 0 and which are replicated.
        rank, world_size, group: the position in the process group.
        comm_stats: byte counters of every collective this shard ran (reset with ``comm_stats.reset()``).
        sync_inputs: in training mode, broadcast each input batch from rank 0 first (costs the batch's
            bytes per step). For loaders whose random augmentation differs between ranks — every rank
            must see the same images, or the shards compute on different data.
    """

    def __init__(self, module: ClassifierModel, plan: ShardPlan, rank: int, group: dist.ProcessGroup | None,
                 stats: CommStats, shard_stem: bool = True) -> None:
        super().__init__()
        self.module, self.shard_stem = module, shard_stem
        self.plan, self.rank, self.world_size, self.group = plan, rank, plan.world_size, group
        self.comm_stats = stats
        self.sync_inputs = False

    def _broadcast_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().contiguous().clone()
        src = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        try:
            dist.broadcast(x, src=src, group=self.group)
        except Exception as e:
            raise CollectiveError(f"group-parallel broadcast of the input batch failed on rank {self.rank}: a peer "
                                  f"died or stalled, or ranks got batches of different shapes ({tuple(x.shape)} "
                                  f"here). Backend error: {type(e).__name__}: {e}") from e
        nbytes = x.numel() * x.element_size()
        self.comm_stats.add("input_broadcast", nbytes, (self.world_size - 1) * nbytes if self.rank == 0 else 0)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        if self.sync_inputs and self.training:
            x = self._broadcast_input(x)
        x = m.stem_forward(x)  # split stem: already this rank's channels
        if not self.shard_stem:
            x = shard_replicated(x, self.group, self.comm_stats, "body entry")
        for block in m.body():
            x = block(x)
        x = m.final_forward(x)
        x = gather_replicated(x.mean(dim=(2, 3)), self.group, self.comm_stats, "pooled features")
        x = m.head_drop(x)
        return m.get_classifier()(x)

    # -- state -----------------------------------------------------------------------------------
    def local_state_dict(self) -> dict[str, torch.Tensor]:
        """This rank's tensors under the single-process keys (sharded ones are slice ``rank``)."""
        return OrderedDict((k, v.detach()) for k, v in self.module.state_dict().items())

    def load_local_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict)

    def load_full_state_dict(self, state_dict: dict[str, torch.Tensor]) -> Any:
        """Load a single-process state dict: this rank keeps its slices (no communication)."""
        return self.module.load_state_dict(self.plan.split_rank(state_dict, self.rank), strict=True)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Collective (call on every rank): the single-process state dict, same keys as ``create_model``."""
        sharded = set(self.plan.sharded)
        out: dict[str, torch.Tensor] = OrderedDict()
        for k, v in self.module.state_dict().items():
            v = v.detach()
            if k in sharded:
                full = v.new_empty((self.world_size * v.shape[0], *v.shape[1:]))
                _run("all-gather", _all_gather, full, v.contiguous(), self.group, f"state {k!r}")
                v = full
            out[k] = v.clone()
        return out

    # -- accounting ------------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """Parameters on this rank: ``sharded`` (its slices of the replaced layers/BN) and ``replicated``."""
        sharded = set(self.plan.sharded)
        counts = {"sharded": 0, "replicated": 0}
        for k, p in self.module.named_parameters():
            counts["sharded" if k in sharded else "replicated"] += p.numel()
        counts["total"] = counts["sharded"] + counts["replicated"]
        return counts


def group_parallel(model: nn.Module, group: dist.ProcessGroup | None = None, *, shard_stem: bool = True,
                   inplace: bool = False) -> GroupParallel:
    """Return this rank's shard of ``model`` (a GC or GC-2L WideResNet/MobileNetV2 with ``groups`` = N).

    Call on every rank of an initialised process group of size N, with the same model on every rank
    (same seed, or the same checkpoint; a model on the meta device shards without allocating — then
    ``to_empty`` and load the rank's tensors). Raises :class:`GroupParallelError` for ``shuffle``/``flgc``
    or ``sc`` models, and when the world size differs from ``groups``.

    ``shard_stem=True`` splits the stem by output channel (exact, no communication at the body entry);
    ``False`` replicates it and slices its output (backward: an all-gather of that output's gradient).
    ``inplace=True`` turns ``model`` itself into the shard, keeping its parameter objects (each now holds
    its slice), so an optimizer built over ``model.parameters()`` before the call steps the shard; the
    default leaves ``model`` untouched and copies only the replicated parts.
    """
    check_supported(model)
    if not (dist.is_available() and dist.is_initialized()):
        raise GroupParallelError("group_parallel needs an initialised process group: call "
                                 "torch.distributed.init_process_group (torchrun sets up the environment) first")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if rank < 0:
        raise GroupParallelError("this process is not a member of the given process group")
    plan = make_plan(model, world, shard_stem)
    assert isinstance(model, ClassifierModel)
    if model.grad_checkpointing:
        raise GroupParallelError("gradient checkpointing is not supported with group parallelism; call "
                                 "model.set_grad_checkpointing(False) first")
    head_drop = getattr(model, "head_drop", None)
    seed = _seed_from_rank0(group) if isinstance(head_drop, nn.Dropout) and head_drop.p > 0 else 0
    stats = CommStats()
    module = _local_module(model, rank, world, group, stats, seed, shard_stem, inplace)
    return GroupParallel(module, plan, rank, group, stats, shard_stem)
