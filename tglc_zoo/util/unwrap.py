"""The model inside the wrappers people train with: ``torch.compile``, ``DistributedDataParallel``,
``DataParallel`` (nested ones too), as timm's ``unwrap_model`` finds it."""
from __future__ import annotations

from torch import nn

__all__ = ["unwrap_model"]

_WRAPPERS: tuple[type[nn.Module], ...] = (nn.parallel.DistributedDataParallel, nn.DataParallel)


def unwrap_model(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """``(the innermost model, the wrappers taken off, outermost first)``."""
    wrappers: list[str] = []
    while True:
        if isinstance(model, _WRAPPERS):
            wrappers.append(type(model).__name__)
            model = model.get_submodule("module")
        elif isinstance(orig := getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            wrappers.append("torch.compile")
            model = orig
        else:
            return model, wrappers
