"""Turn training-only layer forms into their inference forms."""
from __future__ import annotations

import copy

from torch import nn

from .flgc import DeployedFLGC, FLGCConv2d


def deploy(module: nn.Module) -> nn.Module:
    """Return a copy of ``module`` in which every :class:`FLGCConv2d` is a :class:`DeployedFLGC`.

    Works on a single layer or a whole model; the original is left untouched. The copy computes the
    same outputs as the original with real grouped convolutions over permuted channels.
    """
    if isinstance(module, FLGCConv2d):
        return DeployedFLGC(module).train(module.training)
    module = copy.deepcopy(module)
    for name, child in list(module.named_modules()):
        if isinstance(child, FLGCConv2d):
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, DeployedFLGC(child).train(child.training))
    return module
