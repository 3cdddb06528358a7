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

from collections.abc import Iterable, Sequence
from typing import cast

import torch
from torch import nn

from ._flop_math import conv_flops, conv_out_hw, out_hw, plain_conv_flops, shape4
from .conv_types import CONV_SPECS, conv_type_of
from .flgc import DeployedFLGC

__all__ = ["COUNTED", "conv_flops", "conv_out_hw", "layer_flops", "model_flops", "train_flops"]

# every class with a FLOP rule: the conv types' layers, their deployed forms, plain convs and linears
COUNTED: tuple[type[nn.Module], ...] = (*(s.layer for s in CONV_SPECS.values()), DeployedFLGC, nn.Conv2d, nn.Linear)


def layer_flops(layer: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of one conv-type layer (or ``nn.Conv2d``/``nn.Linear``) for an input of ``input_shape``."""
    spec = conv_type_of(layer)
    if spec is not None:
        return spec.flops(layer, input_shape)
    if isinstance(layer, nn.Linear):
        rows = 1
        for v in input_shape[:-1]:
            rows *= int(v)
        return 2 * rows * layer.in_features * layer.out_features
    if isinstance(layer, DeployedFLGC):
        b, hw = shape4(input_shape)[0], out_hw(layer, input_shape)
        return sum(conv_flops(b, hw, conv.in_channels, conv.out_channels, conv.kernel_size, conv.groups)
                   for conv in cast("Iterable[nn.Conv2d]", layer.convs))  # DeployedFLGC holds only Conv2d
    if isinstance(layer, nn.Conv2d):
        return plain_conv_flops(layer, input_shape)
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
