"""Helpers shared by the conversion tests (imported by name: tests/convert is on sys.path under pytest)."""
from __future__ import annotations

import torch


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Distinct random parameters and BN statistics, so copying the wrong tensor cannot pass by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=g) * 0.3
                t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return model.eval()


def images(batch: int = 4, size: int = 12, seed: int = 1, chans: int = 1) -> torch.Tensor:
    return torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(seed))
