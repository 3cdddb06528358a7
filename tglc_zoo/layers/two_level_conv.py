"""GC-2L: the two-level group convolution of eq. (3.5), ``A2L = R̄0ᵀ R0 + Agp``.

* ``conv``     — ``Agp``: the group convolution ``Conv2d(n, m, d, groups=N)``;
* ``restrict`` — ``R0`` (eq. 3.3): one representative channel per group, ``Conv2d(n, N, d0, groups=N)``
  with ``d0 = d`` and the same stride and padding as ``Agp``;
* ``coarse``   — ``R̄0ᵀ`` (eq. 3.4): the full 1×1 convolution ``Conv2d(N, m, 1)`` that mixes the
  N representatives back into every output channel.

Every implementation reads this one parameter layout (so checkpoints and the group-parallel sharding
do not depend on it); see :mod:`tglc_zoo.layers._gc2l_kernels` for what each computes:

* ``"split"``  — two grouped convolutions, the coarse 1×1 conv and an add (the reference form);
* ``"addmm"``  — group conv, ``R0`` as a depthwise conv + group sum, coarse product accumulated into the
  group-conv output (in place at inference);
* ``"fused"``  — ``Agp`` and ``R0`` as one grouped conv from n to m + N channels (section 3.2);
* ``"dense"``  — one dense conv with the composite weight (SC's cost, exact);
* ``"auto"`` (default) — per input shape, the implementation measured fastest for it on this device
  type, from the committed table of :mod:`tglc_zoo.layers.gc2l_impl` (no run-time autotuning).
"""
from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn

from . import _gc2l_kernels as kernels
from ._validate import IntOrPair, check_groups, resolve_padding
from .gc2l_impl import ShapeKey, choose_impl
from .init import he_init_

Impl = Literal["auto", "split", "addmm", "fused", "dense"]
IMPLS: tuple[str, ...] = ("auto", "split", "addmm", "fused", "dense")
DEFAULT_IMPL: Impl = "auto"


@torch.compiler.assume_constant_result
def _auto_impl(device: str, channels_last: bool, training: bool, n: int, m: int, k: int, stride: int, groups: int,
               hw: int) -> str:
    """The table lookup, a constant for ``torch.compile`` (the graph is specialised to the shape anyway)."""
    return choose_impl(ShapeKey(device, channels_last, training, n, m, k, stride, groups, hw))


class TwoLevelGroupConv2d(nn.Module):
    """Two-level group convolution ``y = Agp(x) + R̄0ᵀ(R0(x))`` (no bias or norm inside the coarse path)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair | None = None, groups: int = 1, bias: bool = False,
                 impl: Impl = DEFAULT_IMPL, dilation: IntOrPair = 1) -> None:
        super().__init__()
        check_groups(in_channels, out_channels, groups)
        if impl not in IMPLS:
            raise ValueError(f"unknown GC-2L impl {impl!r}; valid choices: {list(IMPLS)}")
        padding = resolve_padding(kernel_size, padding, dilation)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.impl: Impl = impl
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.restrict = nn.Conv2d(in_channels, groups, kernel_size, stride, padding, dilation, groups, bias=False)
        self.coarse = nn.Conv2d(groups, out_channels, 1, bias=False)
        for m in (self.conv, self.restrict, self.coarse):
            he_init_(m)
        # nn.Conv2d stores int kernel_size/stride/padding as pairs (its stubs say tuple[int, ...] / str)
        self.kernel_size = cast("tuple[int, int]", self.conv.kernel_size)
        self.stride = cast("tuple[int, int]", self.conv.stride)
        self.padding = cast("tuple[int, int]", self.conv.padding)
        self.dilation = cast("tuple[int, int]", self.conv.dilation)

    def fused_weight(self) -> torch.Tensor:
        """The (m + N, n/N, d, d) weight of the single grouped conv that computes ``Agp`` and ``R0``."""
        return kernels.fused_weight(self.conv.weight, self.restrict.weight, self.groups)

    def fused_bias(self) -> torch.Tensor | None:
        return kernels.fused_bias(self.conv.bias, self.groups)

    def composite_weight(self) -> torch.Tensor:
        """The dense (m, n, d, d) weight of the whole operator ``blockdiag(Agp) + R̄0ᵀ·R0``."""
        return kernels.composite_weight(self.conv.weight, self.restrict.weight, self.coarse.weight, self.groups)

    def resolve_impl(self, x: torch.Tensor) -> str:
        """The implementation that ``forward(x)`` runs (``impl``, or the table's choice for ``"auto"``)."""
        if self.impl != "auto":
            return self.impl
        k = [d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel_size)]  # dilated extent
        h = (x.shape[-2] + 2 * self.padding[0] - k[0]) // self.stride[0] + 1
        w = (x.shape[-1] + 2 * self.padding[1] - k[1]) // self.stride[1] + 1
        training = torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad)
        channels_last = bool(x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
        return _auto_impl(x.device.type, channels_last, bool(training), self.in_channels, self.out_channels,
                          self.kernel_size[0], self.stride[0], self.groups, int(h * w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = kernels.KERNELS[self.resolve_impl(x)]
        return kernel(x, self.conv.weight, self.restrict.weight, self.coarse.weight, self.conv.bias,
                      self.stride, self.padding, self.groups, self.dilation)

    def extra_repr(self) -> str:
        extra = f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        return f"groups={self.groups}, impl={self.impl!r}{extra}"
