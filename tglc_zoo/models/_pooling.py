"""Global pooling of the head: the ``global_pool`` choices and the pooling itself."""
from typing import Any

import torch

from ..errors import ModelArgumentError
from ..util.choices import check_choice

__all__ = ["POOL_TYPES", "check_global_pool", "global_pool_2d"]

POOL_TYPES: tuple[str, ...] = ("avg", "max", "avgmax", "")
"""``global_pool`` choices: average, max, their mean, or ``""`` (no pooling: unpooled features, no classifier)."""


def check_global_pool(global_pool: Any, num_classes: int) -> str:
    """``global_pool`` if it is one of :data:`POOL_TYPES` and fits ``num_classes`` (``""`` needs no classifier)."""
    pool = check_choice("global_pool", global_pool, POOL_TYPES)
    if pool == "" and num_classes > 0:
        raise ModelArgumentError(f"global_pool='' (no pooling) needs num_classes=0, got num_classes={num_classes}: "
                                 "a linear classifier needs pooled features")
    return pool


def global_pool_2d(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """Pool (B, C, H, W) to (B, C) by ``pool_type`` (one of :data:`POOL_TYPES`); ``""`` returns ``x``."""
    if pool_type == "avg":
        return x.mean(dim=[2, 3])
    if pool_type == "max":
        return x.amax(dim=[2, 3])
    if pool_type == "avgmax":
        return 0.5 * (x.mean(dim=[2, 3]) + x.amax(dim=[2, 3]))
    return x
