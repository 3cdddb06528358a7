"""Per-rank modules: group k of each replaced layer, its normalisation channels, synced dropout, and the
small modules the sharded graph calls to move tensors between placements.

Each constructor takes the single-process module and copies the slices rank k owns (views of
meta tensors stay meta, so a model built on the meta device shards without allocating anything).
"""
from __future__ import annotations

import copy
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..layers import TwoLevelGroupConv2d
from .collectives import CommStats, gather_partial, gather_replicated, shard_replicated

__all__ = ["LocalTwoLevelConv2d", "local_conv", "local_batchnorm", "local_per_channel", "SyncedDropout",
           "SyncedDropPath", "GatherChannels", "SliceChannels", "AttrRef"]


def _rows(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    s = t.shape[0] // world
    return t[rank * s:(rank + 1) * s]


def _param(t: torch.Tensor, like: nn.Parameter, reuse: bool) -> nn.Parameter:
    """A parameter holding (a copy of) slice ``t`` of ``like``; with ``reuse``, ``like`` itself now holding it.

    Reusing the parameter object keeps optimizers built over the single-process model valid: they now
    step this rank's slice (their state is created lazily, at the first step).
    """
    if reuse:
        like.data = t.detach().clone()
        return like
    return nn.Parameter(t.detach().clone(), requires_grad=like.requires_grad)


def local_conv(conv: nn.Conv2d, rank: int, world: int, in_channels: int | None = None,
               out_channels: int | None = None, groups: int | None = None, reuse: bool = False) -> nn.Conv2d:
    """Rows ``rank`` of ``conv``'s output channels as a plain ``nn.Conv2d``.

    Defaults fit a grouped conv with ``groups`` a multiple of ``world``: ``n/N → m/N`` with ``groups/N``
    groups (GC's ``Agp`` becomes dense over its group; a depthwise conv stays depthwise).
    """
    in_channels = conv.in_channels // world if in_channels is None else in_channels
    out_channels = conv.out_channels // world if out_channels is None else out_channels
    groups = conv.groups // world if groups is None else groups
    # nn.Conv2d keeps its geometry as pairs (or a padding string) and its weight/bias as Parameters;
    # torch's stubs say tuple[int, ...] and Tensor
    with torch.device("meta"):
        new = nn.Conv2d(in_channels, out_channels, cast("tuple[int, int]", conv.kernel_size),
                        cast("tuple[int, int]", conv.stride), cast("str | tuple[int, int]", conv.padding),
                        cast("tuple[int, int]", conv.dilation), groups, conv.bias is not None, conv.padding_mode)
    new.weight = _param(_rows(conv.weight, rank, world), cast(nn.Parameter, conv.weight), reuse)
    if conv.bias is not None:
        new.bias = _param(_rows(conv.bias, rank, world), cast(nn.Parameter, conv.bias), reuse)
    return new


def local_batchnorm(bn: nn.BatchNorm2d, rank: int, world: int, reuse: bool = False) -> nn.BatchNorm2d:
    """BatchNorm over this rank's channels: per-channel statistics make it exact in train mode too."""
    with torch.device("meta"):
        new = nn.BatchNorm2d(bn.num_features // world, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight = _param(_rows(bn.weight, rank, world), bn.weight, reuse)
        new.bias = _param(_rows(bn.bias, rank, world), bn.bias, reuse)
    if bn.track_running_stats:
        assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
        new.running_mean = _rows(bn.running_mean, rank, world).clone()
        new.running_var = _rows(bn.running_var, rank, world).clone()
        new.num_batches_tracked = bn.num_batches_tracked.clone()
    return new


class LocalTwoLevelConv2d(nn.Module):
    """Group k of a GC-2L layer: ``y_k = Agp_k(x_k) + S_k · allgather(R0_k(x_k))``.

    ``conv``: Agp's block k ``(m/N, n/N, d, d)``; ``restrict``: R0's row k ``(1, n/N, d, d)``;
    ``coarse``: ``S_k``, rows k of R̄0ᵀ ``(m/N, N, 1, 1)``. The names match the single-process layer,
    so the rank's state dict has the same keys. The only communication is the all-gather of the N
    representative channels (reduce-scatter of their gradient in backward).
    """

    def __init__(self, layer: TwoLevelGroupConv2d, rank: int, world: int, group: dist.ProcessGroup | None,
                 stats: CommStats | None, name: str = "", reuse: bool = False) -> None:
        super().__init__()
        n, m = layer.in_channels // world, layer.out_channels // world
        self.in_channels, self.out_channels, self.groups = n, m, world
        # per group, Agp_k and R0_k are dense convs: run them as one ("fused") or two (any other impl)
        self.impl = "fused" if layer.impl == "fused" else "split"
        self.conv = local_conv(layer.conv, rank, world, n, m, 1, reuse)
        self.restrict = local_conv(layer.restrict, rank, world, n, 1, 1, reuse)
        self.coarse = local_conv(layer.coarse, rank, world, world, m, 1, reuse)
        self.group, self.stats, self.name = group, stats, name

    def _gather(self, rep: torch.Tensor) -> torch.Tensor:
        return gather_partial(rep, self.group, self.stats, self.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fused":
            w = torch.cat((self.conv.weight, self.restrict.weight), dim=0)
            b = None if self.conv.bias is None else torch.cat((self.conv.bias, self.conv.bias.new_zeros(1)))
            out = F.conv2d(x, w, b, self.conv.stride, self.conv.padding, self.conv.dilation)
            local, rep = out[:, :self.out_channels], out[:, self.out_channels:]
        else:
            local, rep = self.conv(x), self.restrict(x)
        return local + self.coarse(self._gather(rep))

    def extra_repr(self) -> str:
        return f"group {self.name!r}: {self.in_channels}->{self.out_channels} of N={self.groups}, impl={self.impl!r}"


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


def local_per_channel(module: nn.Module, rank: int, world: int, channels: int, reuse: bool = False) -> nn.Module:
    """A per-channel module (BatchNorm and its timm variants, InstanceNorm, GroupNorm, frozen BatchNorm,
    PReLU) over this rank's ``channels / world`` channels: every own tensor with ``channels`` rows is sliced,
    the rest (``num_batches_tracked``) kept, and the channel-count attributes divided."""
    own = [*module._parameters.values(), *module._buffers.values()]
    new = copy.deepcopy(module, {id(t): None for t in own if t is not None})
    for name, p in module._parameters.items():
        if p is not None:
            rows = _rows(p, rank, world) if p.dim() and p.shape[0] == channels else p
            new._parameters[name] = _param(rows, p, reuse)
    for name, b in module._buffers.items():
        if b is not None:
            new._buffers[name] = (_rows(b, rank, world) if b.dim() and b.shape[0] == channels else b).clone()
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
