"""Analytic FLOP counts of every conv type, with the conventions of ``torch.utils.flop_counter``.

One multiply-add is 2 FLOPs; only convolutions and matrix products are counted (no bias, no adds,
no normalisation, no activations) — exactly what :class:`torch.utils.flop_counter.FlopCounterMode`
counts, so the two agree to the FLOP. GC-2L counts its two extra operators: ``R0`` (one output channel
per group, ``2·P·n·d²``) and ``R̄0ᵀ`` (``2·P·N·m``), P = batch × output pixels.

:func:`layer_flops` counts one layer's forward pass from its input shape; :func:`model_flops` runs a
model once on a zero batch and adds the analytic count of every counted layer it calls.
Backward: for a convolution or a product, ``grad_input`` and ``grad_weight`` each cost its forward
FLOPs, so one training step costs 3× the forward (2× for a layer whose input needs no gradient);
:func:`train_flops` applies that rule. (``FlopCounterMode`` itself overcounts the ``grad_weight`` of a
grouped conv by a factor of ``groups`` in torch 2.x, so do not use it for backward ratios.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .flgc import DeployedFLGC, FLGCConv2d
from .shuffle_conv import ShuffleGroupConv2d
from .two_level_conv import TwoLevelGroupConv2d

COUNTED = (nn.Conv2d, nn.Linear, TwoLevelGroupConv2d, ShuffleGroupConv2d, FLGCConv2d, DeployedFLGC)


def conv_out_hw(h: int, w: int, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                dilation: Sequence[int] = (1, 1)) -> tuple[int, int]:
    return ((h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
            (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)


def conv_flops(batch: int, out_hw: tuple[int, int], in_channels: int, out_channels: int, kernel: Sequence[int],
               groups: int = 1) -> int:
    """``2 · B · H_out · W_out · C_out · (C_in / groups) · kh · kw``."""
    return 2 * batch * out_hw[0] * out_hw[1] * out_channels * (in_channels // groups) * kernel[0] * kernel[1]


def _shape4(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(input_shape) != 4:
        raise ValueError(f"expected an input shape (B, C, H, W), got {tuple(input_shape)}")
    b, c, h, w = (int(v) for v in input_shape)
    return b, c, h, w


def layer_flops(layer: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of one conv-type layer (or ``nn.Conv2d``/``nn.Linear``) for an input of ``input_shape``."""
    if isinstance(layer, nn.Linear):
        rows = 1
        for v in input_shape[:-1]:
            rows *= int(v)
        return 2 * rows * layer.in_features * layer.out_features
    b, c, h, w = _shape4(input_shape)
    if isinstance(layer, ShuffleGroupConv2d):
        return layer_flops(layer.conv, input_shape)
    if isinstance(layer, TwoLevelGroupConv2d):
        hw = conv_out_hw(h, w, layer.kernel_size, layer.stride, layer.padding)
        n, m, g = layer.in_channels, layer.out_channels, layer.groups
        return (conv_flops(b, hw, n, m, layer.kernel_size, g)          # Agp
                + conv_flops(b, hw, n, g, layer.kernel_size, g)        # R0
                + conv_flops(b, hw, g, m, (1, 1)))                     # R̄0ᵀ
    if isinstance(layer, FLGCConv2d):  # masked dense conv + the (C_out×N)(N×C_in) mask product
        hw = conv_out_hw(h, w, layer.kernel_size, layer.stride, layer.padding)
        return (conv_flops(b, hw, layer.in_channels, layer.out_channels, layer.kernel_size)
                + 2 * layer.out_channels * layer.groups * layer.in_channels)
    if isinstance(layer, DeployedFLGC):
        hw = conv_out_hw(h, w, layer.kernel_size, layer.stride, layer.padding)
        return sum(conv_flops(b, hw, conv.in_channels, conv.out_channels, conv.kernel_size, conv.groups)
                   for conv in layer.convs)
    if isinstance(layer, nn.Conv2d):
        hw = conv_out_hw(h, w, layer.kernel_size, layer.stride, layer.padding, layer.dilation)
        return conv_flops(b, hw, layer.in_channels, layer.out_channels, layer.kernel_size, layer.groups)
    raise TypeError(f"no FLOP rule for {type(layer).__name__}; counted types: {[t.__name__ for t in COUNTED]}")


def train_flops(forward_flops: int, input_needs_grad: bool = True) -> int:
    """FLOPs of forward + backward for a stack of convs/products whose forward costs ``forward_flops``."""
    return forward_flops * (3 if input_needs_grad else 2)


def model_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of ``model`` on a zero batch of ``input_shape``: the sum of :func:`layer_flops` over
    the outermost counted layers it calls (layers inside a counted layer are not counted twice)."""
    counted: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, COUNTED) and not any(name.startswith(p + ".") for p in counted):
            counted[name] = module
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal total
        total += layer_flops(module, args[0].shape)

    handles = [m.register_forward_pre_hook(hook) for m in counted.values()]
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(*input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return total
