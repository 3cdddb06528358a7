"""Per-rank modules: group k of each replaced layer, its BatchNorm channels, and the synced head dropout.

Each constructor takes the single-process module and copies the slices rank k owns (views of
meta tensors stay meta, so a model built on the meta device shards without allocating anything).
"""
from __future__ import annotations

from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..layers import TwoLevelGroupConv2d
from .collectives import CommStats, gather_partial

__all__ = ["LocalTwoLevelConv2d", "local_conv", "local_batchnorm", "SyncedDropout"]


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


class SyncedDropout(nn.Module):
    """Dropout whose masks are identical on every rank (the head after the all-gather is replicated).

    The generator's seed comes from rank 0 (a broadcast at construction), so the replicated classifier
    sees the same features everywhere and its gradients stay identical across ranks.
    """

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        self.p, self.seed = float(p), int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

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
