"""GC: the one-level group convolution (block-Jacobi approximation, eq. 2.9)."""
from __future__ import annotations

from torch import nn

from ._validate import IntOrPair, check_groups, resolve_padding
from .init import he_init_


class GroupConv2d(nn.Conv2d):
    """``nn.Conv2d(n, m, d, groups=N)`` with He initialisation and argument checks."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair | None = None, groups: int = 1, bias: bool = False,
                 dilation: IntOrPair = 1) -> None:
        check_groups(in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=resolve_padding(kernel_size, padding, dilation), dilation=dilation, groups=groups,
                         bias=bias)
        he_init_(self)
