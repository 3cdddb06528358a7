import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tests.support.hf_cache import populate_hf_cache

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
