"""Argument checks shared by every convolution type."""
from __future__ import annotations


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise ``ValueError`` unless ``groups`` divides both channel counts."""
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    for what, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"{what} must be a positive integer, got {channels!r}")
    if in_channels % groups or out_channels % groups:
        valid = [n for n in range(1, min(in_channels, out_channels) + 1)
                 if in_channels % n == 0 and out_channels % n == 0]
        raise ValueError(
            f"groups={groups} does not divide in_channels={in_channels} and out_channels={out_channels}; "
            f"valid groups for this layer: {valid}"
        )


IntOrPair = int | tuple[int, int]


def pair(value: IntOrPair, name: str = "value") -> tuple[int, int]:
    """``(v, v)`` for an int, the pair itself for a pair of ints; anything else names ``name``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def resolve_padding(kernel_size: IntOrPair, padding: IntOrPair | None, dilation: IntOrPair = 1) -> tuple[int, int]:
    """``padding`` as a pair; ``None`` means "same" for stride 1: ``dilation · (k − 1) // 2`` per side."""
    if padding is not None:
        return pair(padding, "padding")
    k, d = pair(kernel_size, "kernel_size"), pair(dilation, "dilation")
    return (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
