"""He (Kaiming) initialisation, the paper's choice for every convolution."""
from __future__ import annotations

from torch import nn


def he_init_(conv: nn.Conv2d) -> None:
    """Kaiming-normal (fan_out, ReLU), as in torchvision's ResNets and the WRN reference code."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
