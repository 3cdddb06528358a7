"""Helpers shared by the checkpoint tests (imported by name: tests/checkpoint is on sys.path under pytest)."""
from __future__ import annotations

from typing import Any

import torch

CONV_VARIANTS = {"sc": "wrn16_2", "gc": "wrn16_2_gc_n2", "gc2l": "wrn16_2_gc2l_n2",
                 "shuffle": "wrn16_2_shuffle_n2", "flgc": "wrn16_2_flgc_n2"}


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic a distinct random value, so no route can pass by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=g) * 0.3
                t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return model.eval()


def make_model(name: str, seed: int = 0, **kwargs: Any) -> torch.nn.Module:
    import tglc_zoo

    kwargs = {"num_classes": 3, "in_chans": 1, **kwargs}
    return randomized(tglc_zoo.create_model(name, **kwargs), seed)


def grey(batch: int = 2, chans: int = 1, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(seed))
