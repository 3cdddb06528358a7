import gzip
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.hf_cache import populate_hf_cache
from tglc_zoo.data import FMNIST_SYSTEM_DIR, load_dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """An empty HF cache that huggingface_hub uses by default, in offline mode; call it to add a repo."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def add(repo_id: str, folder: Path, revision: str = "main") -> str:
        return populate_hf_cache(cache, repo_id, folder, revision=revision)

    add.cache = cache  # type: ignore[attr-defined]
    yield add


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
