"""Shuffle: a group convolution followed by ShuffleNet's channel shuffle of its output."""
from __future__ import annotations

import torch
from torch import nn

from ._validate import IntOrPair
from .group_conv import GroupConv2d


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Reshape channels to (groups, C/groups), transpose, flatten (ShuffleNet); keeps a channels_last input's layout.

    The layout check is a branch on the input, so FX records this function as one call
    (``torch.fx.wrap``) that runs as written when the graph runs; TorchScript compiles it as is.
    """
    b, c, h, w = x.shape
    out = x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)
    if x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


torch.fx.wrap("channel_shuffle")


class ShuffleGroupConv2d(nn.Module):
    """GC followed by a channel shuffle; the same parameters as GC."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair | None = None, groups: int = 1, bias: bool = False,
                 dilation: IntOrPair = 1) -> None:
        super().__init__()
        self.conv = GroupConv2d(in_channels, out_channels, kernel_size, stride, padding, groups, bias, dilation)
        self.dilation = self.conv.dilation
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = self.conv.kernel_size, self.conv.stride, self.conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(self.conv(x), self.groups)

    def extra_repr(self) -> str:
        return f"shuffle groups={self.groups}"
