"""Fixtures for the training tests: small real data and data in each supported on-disk format."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from train_testdata import write_cifar, write_imagefolder

from tglc_zoo.data import FMNIST_SYSTEM_DIR, load_dataset


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory) -> Path:
    """A folder with a real Fashion-MNIST subset (512 train / 256 test) as idx .gz files."""
    if not (FMNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST is not installed in {FMNIST_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)")
    out = tmp_path_factory.mktemp("fmnist")
    for train, n, prefix in ((True, 512, "train"), (False, 256, "t10k")):
        ds = load_dataset("fmnist", FMNIST_SYSTEM_DIR, train=train)
        _write_idx(out / f"{prefix}-images-idx3-ubyte.gz", ds.images[:n, 0].numpy())
        _write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", ds.targets[:n].numpy().astype(np.uint8))
    return out


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return write_cifar(tmp_path / "cifar")


@pytest.fixture
def imagenet_dir(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "imagenet")
