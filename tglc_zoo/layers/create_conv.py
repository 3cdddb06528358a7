"""The factory that picks the convolution type: models never branch on it."""
from __future__ import annotations

import difflib
from typing import Any, Callable

from torch import nn

from .flgc import FLGCConv2d
from .group_conv import GroupConv2d
from .shuffle_conv import ShuffleGroupConv2d
from .std_conv import StdConv2d
from .two_level_conv import TwoLevelGroupConv2d

_CONV_LAYERS: dict[str, Callable[..., nn.Module]] = {
    "sc": StdConv2d,
    "gc": GroupConv2d,
    "gc2l": TwoLevelGroupConv2d,
    "shuffle": ShuffleGroupConv2d,
    "flgc": FLGCConv2d,
}
CONV_TYPES: tuple[str, ...] = tuple(_CONV_LAYERS)
# how the paper writes each type (table headings, plots)
CONV_LABELS: dict[str, str] = {"sc": "SC", "gc": "GC", "gc2l": "GC-2L", "shuffle": "Shuffle", "flgc": "FLGC"}


def check_conv_type(conv_type: str) -> str:
    if conv_type not in _CONV_LAYERS:
        hint = difflib.get_close_matches(str(conv_type), CONV_TYPES, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown conv_type {conv_type!r}{extra}; valid choices: {list(CONV_TYPES)}")
    return conv_type


def create_conv(conv_type: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                padding: int | None = None, groups: int = 1, bias: bool = False, **kwargs: Any) -> nn.Module:
    """Build a drop-in replacement for ``nn.Conv2d`` of the requested type.

    Args:
        conv_type: one of ``"sc"``, ``"gc"``, ``"gc2l"``, ``"shuffle"``, ``"flgc"``.
        in_channels, out_channels, kernel_size, stride, bias: as for ``nn.Conv2d``.
        padding: defaults to ``kernel_size // 2``.
        groups: the number of groups N (must be 1 for ``"sc"``).
        **kwargs: type-specific options (e.g. ``impl`` for ``"gc2l"``).
    """
    layer = _CONV_LAYERS[check_conv_type(conv_type)]
    return layer(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
                 bias=bias, **kwargs)
