"""Frozen BatchNorm, as detection and segmentation fine-tuning uses it: fixed statistics and affine.

torchvision's ``FrozenBatchNorm2d`` drops ``num_batches_tracked``; this one keeps it, so the state dict of a
frozen model has BatchNorm2d's keys and checkpoints move between the two forms unchanged (strict loading).
"""
from typing import Any

import torch
import torchvision
from torch import nn

from ..util.choices import unknown_choice

__all__ = ["NORM_LAYERS", "FrozenBatchNorm2d", "check_norm_layer", "freeze_batchnorm"]

NORM_LAYERS: tuple[str, ...] = ("batchnorm", "frozen_bn")
"""``norm_layer`` choices: trained BatchNorm2d (the default), or :class:`FrozenBatchNorm2d`. torchvision's and
timm's ``FrozenBatchNorm2d`` classes and ``nn.BatchNorm2d`` are accepted for them too."""


class FrozenBatchNorm2d(torchvision.ops.FrozenBatchNorm2d):
    """torchvision's ``FrozenBatchNorm2d`` (a subclass, so torchvision's detectors treat it as theirs) with
    BatchNorm2d's ``num_batches_tracked`` buffer; a state dict without it (torchvision's) still loads."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps)
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        state_dict.setdefault(prefix + "num_batches_tracked", self.num_batches_tracked)
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args)


def check_norm_layer(norm_layer: Any) -> str:
    """The name (one of :data:`NORM_LAYERS`) of ``norm_layer``, given by name or as a class."""
    if isinstance(norm_layer, type):
        if issubclass(norm_layer, torchvision.ops.FrozenBatchNorm2d):
            return "frozen_bn"
        if issubclass(norm_layer, nn.BatchNorm2d):
            return "batchnorm"
    if norm_layer not in NORM_LAYERS:
        raise unknown_choice("norm_layer", norm_layer, NORM_LAYERS,
                             valid=f"{list(NORM_LAYERS)}, nn.BatchNorm2d or torchvision.ops.FrozenBatchNorm2d")
    return str(norm_layer)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm2d`` (and ``SyncBatchNorm``) replaced, in place, by a
    :class:`FrozenBatchNorm2d` holding its statistics and affine; returns the root (a new one if it was a BN)."""
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        state = module.state_dict()
        device = next(iter(state.values())).device if state else None
        frozen = FrozenBatchNorm2d(module.num_features, module.eps).to(device=device)
        frozen.load_state_dict(state, strict=False)  # what it has: affine, statistics, count
        return frozen
    for name, child in module.named_children():
        new = freeze_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
