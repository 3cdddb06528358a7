"""The dense kernel computed by a GC / GC-2L / SC layer module (to measure errors of converted layers)."""
from __future__ import annotations

import torch
from torch import nn

from ..layers import TwoLevelGroupConv2d
from .kernel import dense_kernel


def layer_kernel(layer: nn.Module) -> torch.Tensor:
    """The ``(m, n, d, d)`` dense kernel equivalent to ``layer`` (an ``nn.Conv2d`` or a GC-2L layer)."""
    if isinstance(layer, TwoLevelGroupConv2d):
        return dense_kernel(layer.conv.weight.detach(), layer.groups, layer.restrict.weight.detach(),
                            layer.coarse.weight.detach())
    if isinstance(layer, nn.Conv2d):
        return dense_kernel(layer.weight.detach(), layer.groups)
    raise TypeError(f"layer_kernel takes nn.Conv2d or TwoLevelGroupConv2d layers, got {type(layer).__name__}")
