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


def resolve_padding(kernel_size: int, padding: int | None) -> int:
    return kernel_size // 2 if padding is None else padding
