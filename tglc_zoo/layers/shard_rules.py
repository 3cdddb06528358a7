"""How group parallelism splits a conv type over N processes: one :class:`ShardRule` per shardable layer class.

A rule is referred to from the conv type's spec (:data:`tglc_zoo.layers.CONV_SPECS`, ``shard_rule``), and
says everything :mod:`tglc_zoo.distributed` needs to know about the layer:

* whether a layer can run over ``world`` processes (:meth:`ShardRule.check`), and the world size it
  fixes, if any (:meth:`ShardRule.required_world`: GC-2L needs one process per group; GC any divisor);
* how it is placed: a split layer takes and gives activations split by channel group, and every tensor
  of its own with a leading output-channel dimension is split into N equal row blocks, rank k taking
  block k;
* what rank k runs (:meth:`ShardRule.local`), given a :class:`ChannelComm` — the one collective a layer
  may ask for, implemented by the distributed package;
* what that costs per forward (:meth:`ShardRule.communication`).

Adding a shardable conv type is its layer module, its rule (here or beside the layer), and its spec.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import nn

__all__ = ["ChannelComm", "Collective", "ShardRule", "GroupConvRule", "local_conv", "local_rows", "local_param"]


class ChannelComm(Protocol):
    """The collective a split layer may run (provided by :mod:`tglc_zoo.distributed`)."""

    def gather_partial(self, x: torch.Tensor, where: str) -> torch.Tensor:
        """All-gather channel shards ``(B, c, ...) -> (B, N·c, ...)``; backward: reduce-scatter the gradient."""
        ...


@dataclass(frozen=True)
class Collective:
    """One collective a split layer runs per forward: what moves, per rank, and its backward."""

    op: str
    per_rank: tuple[int, ...]
    backward: str


def local_rows(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Row block ``rank`` of ``world`` (views of meta tensors stay meta: nothing is allocated)."""
    s = t.shape[0] // world
    return t[rank * s:(rank + 1) * s]


def local_param(t: torch.Tensor, like: nn.Parameter, reuse: bool, memo: dict[int, nn.Parameter] | None = None
                ) -> nn.Parameter:
    """A parameter holding (a copy of) slice ``t`` of ``like``; with ``reuse``, ``like`` itself now holding it.

    Reusing the parameter object keeps optimizers built over the single-process model valid: they now step
    this rank's slice. ``memo`` (keyed by ``id(like)``) makes a parameter shared by several layers (tied
    weights) become one local parameter, sliced once.
    """
    if memo is not None and id(like) in memo:
        return memo[id(like)]
    if reuse:
        like.data = t.detach().clone()
        out = like
    else:
        out = nn.Parameter(t.detach().clone(), requires_grad=like.requires_grad)
    if memo is not None:
        memo[id(like)] = out
    return out


def local_conv(conv: nn.Conv2d, rank: int, world: int, in_channels: int | None = None,
               out_channels: int | None = None, groups: int | None = None, reuse: bool = False,
               memo: dict[int, nn.Parameter] | None = None) -> nn.Conv2d:
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
    new.weight = local_param(local_rows(conv.weight, rank, world), cast(nn.Parameter, conv.weight), reuse, memo)
    if conv.bias is not None:
        new.bias = local_param(local_rows(conv.bias, rank, world), cast(nn.Parameter, conv.bias), reuse, memo)
    new.train(conv.training)
    return new


class ShardRule(ABC):
    """How one layer class is split over N processes (see the module docstring)."""

    def required_world(self, layer: nn.Module) -> int | None:
        """The world size this layer fixes (``None``: any size :meth:`check` accepts)."""
        return None

    @abstractmethod
    def check(self, layer: nn.Module, world: int) -> str | None:
        """Why ``layer`` cannot be split over ``world`` processes, or ``None`` when it can."""

    @abstractmethod
    def local(self, layer: nn.Module, rank: int, world: int, comm: ChannelComm, name: str, reuse: bool,
              memo: dict[int, nn.Parameter] | None = None) -> nn.Module:
        """Rank ``rank``'s module: its slices of ``layer``'s tensors, under the same state-dict keys."""

    def communication(self, layer: nn.Module, out_shape: tuple[int, ...], world: int) -> list[Collective]:
        """The collectives one forward of the local module runs (and their backward)."""
        return []


class GroupConvRule(ShardRule):
    """GC: ``groups`` a multiple of N, so process k's groups read only its input channels; no communication."""

    def check(self, layer: nn.Module, world: int) -> str | None:
        groups = int(getattr(layer, "groups", 0))
        if groups and groups % world == 0:
            return None
        return f"has groups={groups}, not a multiple of the world size {world}"

    def local(self, layer: nn.Module, rank: int, world: int, comm: ChannelComm, name: str, reuse: bool,
              memo: dict[int, nn.Parameter] | None = None) -> nn.Module:
        assert isinstance(layer, nn.Conv2d)
        return local_conv(layer, rank, world, reuse=reuse, memo=memo)
