"""SC: the standard dense convolution (the N = 1 reference)."""
from __future__ import annotations

from torch import nn

from ._validate import IntOrPair, check_groups, resolve_padding
from .init import he_init_


class StdConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d`` with He initialisation; ``groups`` must be 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair | None = None, groups: int = 1, bias: bool = False,
                 dilation: IntOrPair = 1) -> None:
        if groups != 1:
            raise ValueError(f"conv_type 'sc' is the dense convolution and needs groups=1, got groups={groups}; "
                             "use conv_type 'gc', 'gc2l', 'shuffle' or 'flgc' for grouped variants")
        check_groups(in_channels, out_channels, 1)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=resolve_padding(kernel_size, padding, dilation), dilation=dilation, bias=bias)
        he_init_(self)
