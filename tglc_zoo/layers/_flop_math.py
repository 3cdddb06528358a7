"""FLOP arithmetic shared by the FLOP rules (conventions of ``torch.utils.flop_counter``: 2 FLOPs per
multiply-add, only convolutions and matrix products counted)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def conv_out_hw(h: int, w: int, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                dilation: Sequence[int] = (1, 1)) -> tuple[int, int]:
    return ((h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
            (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)


def conv_flops(batch: int, out_hw: tuple[int, int], in_channels: int, out_channels: int, kernel: Sequence[int],
               groups: int = 1) -> int:
    """``2 · B · H_out · W_out · C_out · (C_in / groups) · kh · kw``."""
    return 2 * batch * out_hw[0] * out_hw[1] * out_channels * (in_channels // groups) * kernel[0] * kernel[1]


def shape4(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(input_shape) != 4:
        raise ValueError(f"expected an input shape (B, C, H, W), got {tuple(input_shape)}")
    b, c, h, w = (int(v) for v in input_shape)
    return b, c, h, w


def out_hw(layer: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """Output pixels of a conv-like layer (``kernel_size``, ``stride``, ``padding``, ``dilation`` attributes)."""
    _, _, h, w = shape4(input_shape)
    return conv_out_hw(h, w, layer.kernel_size, layer.stride, layer.padding,  # type: ignore[arg-type]
                       getattr(layer, "dilation", (1, 1)))


def plain_conv_flops(layer: nn.Conv2d, input_shape: Sequence[int]) -> int:
    """FLOPs of an ``nn.Conv2d`` (grouped or not)."""
    return conv_flops(shape4(input_shape)[0], out_hw(layer, input_shape), layer.in_channels, layer.out_channels,
                      layer.kernel_size, layer.groups)
