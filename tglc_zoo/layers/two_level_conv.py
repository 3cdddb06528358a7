"""GC-2L: the two-level group convolution of eq. (3.5), ``A2L = R̄0ᵀ R0 + Agp``.

* ``conv``     — ``Agp``: the group convolution ``Conv2d(n, m, d, groups=N)``;
* ``restrict`` — ``R0`` (eq. 3.3): one representative channel per group, ``Conv2d(n, N, d0, groups=N)``
  with ``d0 = d`` and the same stride and padding as ``Agp``;
* ``coarse``   — ``R̄0ᵀ`` (eq. 3.4): the full 1×1 convolution ``Conv2d(N, m, 1)`` that mixes the
  N representatives back into every output channel.

Two implementations share one parameter layout (so checkpoints do not depend on it):

* ``"split"`` runs ``Agp`` and ``R0`` as two grouped convolutions;
* ``"fused"`` runs them as one grouped convolution from n to m + N channels (section 3.2), each
  group producing its m/N outputs followed by its representative.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_groups, resolve_padding
from .init import he_init_

Impl = Literal["split", "fused"]
IMPLS: tuple[str, ...] = ("split", "fused")
DEFAULT_IMPL: Impl = "split"


class TwoLevelGroupConv2d(nn.Module):
    """Two-level group convolution ``y = Agp(x) + R̄0ᵀ(R0(x))`` (no bias or norm inside the coarse path)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None, groups: int = 1, bias: bool = False,
                 impl: Impl = DEFAULT_IMPL) -> None:
        super().__init__()
        check_groups(in_channels, out_channels, groups)
        if impl not in IMPLS:
            raise ValueError(f"unknown GC-2L impl {impl!r}; valid choices: {list(IMPLS)}")
        padding = resolve_padding(kernel_size, padding)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.impl: Impl = impl
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        self.restrict = nn.Conv2d(in_channels, groups, kernel_size, stride, padding, groups=groups, bias=False)
        self.coarse = nn.Conv2d(groups, out_channels, 1, bias=False)
        for m in (self.conv, self.restrict, self.coarse):
            he_init_(m)
        self.kernel_size, self.stride, self.padding = self.conv.kernel_size, self.conv.stride, self.conv.padding

    def fused_weight(self) -> torch.Tensor:
        """The (m + N, n/N, d, d) weight of the single grouped conv that computes ``Agp`` and ``R0``."""
        n_g, m_g = self.groups, self.out_channels // self.groups
        w = self.conv.weight.reshape(n_g, m_g, *self.conv.weight.shape[1:])
        r = self.restrict.weight.reshape(n_g, 1, *self.restrict.weight.shape[1:])
        return torch.cat((w, r), dim=1).reshape(-1, *self.conv.weight.shape[1:])

    def fused_bias(self) -> torch.Tensor | None:
        if self.conv.bias is None:
            return None
        n_g, m_g = self.groups, self.out_channels // self.groups
        b = self.conv.bias.reshape(n_g, m_g)
        return torch.cat((b, b.new_zeros(n_g, 1)), dim=1).reshape(-1)

    def _forward_split(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.coarse(self.restrict(x))

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.fused_weight(), self.fused_bias(), self.stride, self.padding, groups=self.groups)
        b, _, h, w = out.shape
        n_g, m_g = self.groups, self.out_channels // self.groups
        out = out.reshape(b, n_g, m_g + 1, h, w)
        local = out[:, :, :m_g].reshape(b, self.out_channels, h, w)
        reps = out[:, :, m_g]
        return local + self.coarse(reps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fused":
            return self._forward_fused(x)
        return self._forward_split(x)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, impl={self.impl!r}"
