"""Fixtures for the training tests: small real data and data in each supported on-disk format."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_testdata import write_cifar, write_imagefolder


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return write_cifar(tmp_path / "cifar")


@pytest.fixture
def imagenet_dir(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "imagenet")
