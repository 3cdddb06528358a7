"""Fixtures for the conversion tests: tiny dense zoo models with every weight and BN statistic random."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Distinct random parameters and BN statistics, so copying the wrong tensor cannot pass by luck."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=g) * 0.3
                t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return model.eval()


@pytest.fixture(scope="module")
def dense_wrn() -> torch.nn.Module:
    import tglc_zoo

    return randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))


def images(batch: int = 4, size: int = 12, seed: int = 1, chans: int = 1) -> torch.Tensor:
    return torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(seed))
