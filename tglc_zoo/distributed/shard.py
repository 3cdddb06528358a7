"""Per-rank modules beside the layers' own (:mod:`tglc_zoo.layers.shard_rules`): normalisation channels, synced
dropout, and the small modules the sharded graph calls to move tensors between placements.

Each constructor takes the single-process module and copies the slices rank k owns (views of
meta tensors stay meta, so a model built on the meta device shards without allocating anything).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..layers.shard_rules import local_param, local_rows
from .collectives import CommStats, gather_replicated, shard_replicated

__all__ = ["local_batchnorm", "local_per_channel", "SyncedDropout",
           "SyncedDropPath", "GatherChannels", "SliceChannels", "AttrRef"]


def local_batchnorm(bn: nn.BatchNorm2d, rank: int, world: int, reuse: bool = False,
                    memo: dict[int, nn.Parameter] | None = None) -> nn.BatchNorm2d:
    """BatchNorm over this rank's channels: per-channel statistics make it exact in train mode too."""
    with torch.device("meta"):
        new = nn.BatchNorm2d(bn.num_features // world, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight = local_param(local_rows(bn.weight, rank, world), bn.weight, reuse, memo)
        new.bias = local_param(local_rows(bn.bias, rank, world), bn.bias, reuse, memo)
    if bn.track_running_stats:
        assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
        new.running_mean = local_rows(bn.running_mean, rank, world).clone()
        new.running_var = local_rows(bn.running_var, rank, world).clone()
        new.num_batches_tracked = bn.num_batches_tracked.clone()
    return new


class _SyncedRandom(nn.Module):
    """A module drawing from its own generators (one per device), seeded identically on every rank."""

    seed: int
    _generators: dict[torch.device, torch.Generator]

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def random_state(self) -> dict[str, torch.Tensor]:
        """Each used generator's state, by device (an exact resume restores it)."""
        return {str(d): g.get_state() for d, g in self._generators.items()}

    def set_random_state(self, state: dict[str, torch.Tensor]) -> None:
        for device, value in state.items():
            self._generator(torch.device(device)).set_state(value)


class SyncedDropout(_SyncedRandom):
    """Dropout whose masks are identical on every rank (the head after the all-gather is replicated).

    The generator's seed comes from rank 0 (a broadcast at construction), so the replicated classifier
    sees the same features everywhere and its gradients stay identical across ranks.
    """

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        self.p, self.seed = float(p), int(seed)
        self._generators = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self._generator(x.device))
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}"

    def __deepcopy__(self, memo: dict[int, Any]) -> SyncedDropout:
        new = SyncedDropout(self.p, self.seed)
        new.train(self.training)
        return new


_CHANNEL_ATTRS = ("num_features", "num_channels", "num_parameters")


def local_per_channel(module: nn.Module, rank: int, world: int, channels: int, reuse: bool = False,
                      memo: dict[int, nn.Parameter] | None = None) -> nn.Module:
    """A per-channel module (BatchNorm and its timm variants, InstanceNorm, GroupNorm, frozen BatchNorm,
    PReLU) over this rank's ``channels / world`` channels: every own tensor with ``channels`` rows is sliced,
    the rest (``num_batches_tracked``) kept, and the channel-count attributes divided."""
    own = [*module._parameters.values(), *module._buffers.values()]
    new = copy.deepcopy(module, {id(t): None for t in own if t is not None})
    for name, p in module._parameters.items():
        if p is not None:
            rows = local_rows(p, rank, world) if p.dim() and p.shape[0] == channels else p
            new._parameters[name] = local_param(rows, p, reuse, memo)
    for name, b in module._buffers.items():
        if b is not None:
            new._buffers[name] = (local_rows(b, rank, world) if b.dim() and b.shape[0] == channels else b).clone()
    for attr in _CHANNEL_ATTRS:
        if getattr(module, attr, None) == channels:
            setattr(new, attr, channels // world)
    if isinstance(module, nn.GroupNorm):
        new.num_groups = module.num_groups // world  # type: ignore[assignment]  # GroupNorm's plain int attribute
    return new


class SyncedDropPath(_SyncedRandom):
    """Stochastic depth (one keep/drop draw per sample) with the same draws on every rank.

    ``mode="row"`` draws per sample (timm's ``DropPath``, torchvision's ``StochasticDepth(mode="row")``),
    ``"batch"`` once per batch. The mask has one value per sample, so it applies to split and replicated
    activations alike.
    """

    def __init__(self, p: float, seed: int, mode: str = "row", scale_by_keep: bool = True) -> None:
        super().__init__()
        self.p, self.seed, self.mode, self.scale_by_keep = float(p), int(seed), mode, bool(scale_by_keep)
        self._generators = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1) if self.mode == "row" else (1,) * x.dim()
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep, generator=self._generator(x.device))
        if keep > 0.0 and self.scale_by_keep:
            mask = mask / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}, seed={self.seed}"

    def __deepcopy__(self, memo: dict[int, Any]) -> SyncedDropPath:
        new = SyncedDropPath(self.p, self.seed, self.mode, self.scale_by_keep)
        new.train(self.training)
        return new


class GatherChannels(nn.Module):
    """``S → R``: all-gather the channel shards (pooled features; backward keeps this rank's slice)."""

    def __init__(self, group: dist.ProcessGroup | None, stats: CommStats, where: str, op: str) -> None:
        super().__init__()
        self.group, self.stats, self.where, self.op = group, stats, where, op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gather_replicated(x, self.group, self.stats, self.where, op=self.op)

    def extra_repr(self) -> str:
        return f"{self.op} at {self.where}"


class SliceChannels(nn.Module):
    """``R → S``: this rank's channels of a replicated tensor (backward all-gathers the slices' gradients)."""

    def __init__(self, group: dist.ProcessGroup | None, stats: CommStats, where: str) -> None:
        super().__init__()
        self.group, self.stats, self.where = group, stats, where

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shard_replicated(x, self.group, self.stats, self.where)

    def extra_repr(self) -> str:
        return f"slice at {self.where}"


class AttrRef(nn.Module):
    """A parameter or buffer of another module, read when called (a traced ``get_attr``): the owner stays
    the one place that holds it, so moving the model (``to``, ``to_empty``) moves what the graph reads."""

    def __init__(self, owner: nn.Module, name: str) -> None:
        super().__init__()
        self._owner = [owner]  # a list: not registered as a submodule (no second copy in the state dict)
        self.name = name

    def forward(self) -> Any:
        return getattr(self._owner[0], self.name)

    def extra_repr(self) -> str:
        return repr(self.name)
