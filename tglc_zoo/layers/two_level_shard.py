"""GC-2L split over N processes (the paper's section 3.2, Figure 2): process k holds group k of the layer.

``y_k = Agp_k(x_k) + S_k · allgather(R0_k(x_k))``: rank k's block of ``Agp`` ``(m/N, n/N, d, d)``, its row of
``R0`` ``(1, n/N, d, d)`` and its rows ``S_k`` of ``R̄0ᵀ`` ``(m/N, N, 1, 1)`` — every tensor of the layer split
by output channel. The one communication is the all-gather of the N representative channels
(``B×1×H×W`` per rank), whose backward is a reduce-scatter of their gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shard_rules import ChannelComm, Collective, ShardRule, local_conv
from .two_level_conv import TwoLevelGroupConv2d

__all__ = ["LocalTwoLevelConv2d", "TwoLevelRule"]


class LocalTwoLevelConv2d(nn.Module):
    """Group k of a GC-2L layer; the names match the single-process layer, so the rank's state dict has the
    same keys (``conv``, ``restrict``, ``coarse``)."""

    def __init__(self, layer: TwoLevelGroupConv2d, rank: int, world: int, comm: ChannelComm, name: str = "",
                 reuse: bool = False, memo: dict[int, nn.Parameter] | None = None) -> None:
        super().__init__()
        n, m = layer.in_channels // world, layer.out_channels // world
        self.in_channels, self.out_channels, self.groups = n, m, world
        # per group, Agp_k and R0_k are dense convs: run them as one ("fused") or two (any other impl)
        self.impl = "fused" if layer.impl == "fused" else "split"
        self.conv = local_conv(layer.conv, rank, world, n, m, 1, reuse, memo)
        self.restrict = local_conv(layer.restrict, rank, world, n, 1, 1, reuse, memo)
        self.coarse = local_conv(layer.coarse, rank, world, world, m, 1, reuse, memo)
        self.comm, self.name = comm, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fused":
            w = torch.cat((self.conv.weight, self.restrict.weight), dim=0)
            b = None if self.conv.bias is None else torch.cat((self.conv.bias, self.conv.bias.new_zeros(1)))
            out = F.conv2d(x, w, b, self.conv.stride, self.conv.padding, self.conv.dilation)
            local, rep = out[:, :self.out_channels], out[:, self.out_channels:]
        else:
            local, rep = self.conv(x), self.restrict(x)
        return local + self.coarse(self.comm.gather_partial(rep, self.name))

    def extra_repr(self) -> str:
        return f"group {self.name!r}: {self.in_channels}->{self.out_channels} of N={self.groups}, impl={self.impl!r}"


class TwoLevelRule(ShardRule):
    """GC-2L: one process per group (the coarse level has exactly N representatives)."""

    def required_world(self, layer: nn.Module) -> int | None:
        return int(getattr(layer, "groups", 0)) or None

    def check(self, layer: nn.Module, world: int) -> str | None:
        groups = int(getattr(layer, "groups", 0))
        return None if groups == world else f"has groups={groups}, but the world size is {world}"

    def local(self, layer: nn.Module, rank: int, world: int, comm: ChannelComm, name: str, reuse: bool,
              memo: dict[int, nn.Parameter] | None = None) -> nn.Module:
        assert isinstance(layer, TwoLevelGroupConv2d)
        local = LocalTwoLevelConv2d(layer, rank, world, comm, name, reuse, memo)
        local.train(layer.training)
        return local

    def communication(self, layer: nn.Module, out_shape: tuple[int, ...], world: int) -> list[Collective]:
        return [Collective("coarse_allgather", (out_shape[0], 1, *out_shape[2:]), "reduce-scatter of the same")]
