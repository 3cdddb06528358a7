"""The factory that picks the convolution type: models never branch on it."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..util.choices import check_choice
from ._validate import IntOrPair
from .conv_types import CONV_SPECS, CONV_TYPES


def check_conv_type(conv_type: str) -> str:
    """``conv_type`` if it is one of :data:`CONV_TYPES`; otherwise an error listing them."""
    return check_choice("conv_type", conv_type, CONV_TYPES)


def create_conv(conv_type: str, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                padding: IntOrPair | None = None, groups: int = 1, bias: bool = False, dilation: IntOrPair = 1,
                **kwargs: Any) -> nn.Module:
    """Build a drop-in replacement for ``nn.Conv2d`` of the requested type.

    Args:
        conv_type: one of :data:`~tglc_zoo.layers.CONV_TYPES` (``"sc"``, ``"gc"``, ``"gc2l"``, ``"shuffle"``,
            ``"flgc"``).
        in_channels, out_channels, kernel_size, stride, bias, dilation: as for ``nn.Conv2d`` (ints or pairs).
        padding: defaults to ``dilation * (kernel_size - 1) // 2`` ("same" at stride 1).
        groups: the number of groups N (must be 1 for ``"sc"``).
        **kwargs: type-specific options (e.g. ``impl`` for ``"gc2l"``).
    """
    layer = CONV_SPECS[check_conv_type(conv_type)].layer
    return layer(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
                 bias=bias, dilation=dilation, **kwargs)
