"""Fixtures for the conversion tests: tiny dense zoo models with every weight and BN statistic random."""
from __future__ import annotations

import pytest
import torch
from convert_helpers import randomize


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dense_wrn() -> torch.nn.Module:
    import tglc_zoo

    return randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))
