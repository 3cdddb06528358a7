"""Fixtures for checkpoint I/O tests: a Hugging Face cache built on disk and a local Hub endpoint."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def cfg_dict() -> dict[str, Any]:
    """A valid checkpoint config (no model needed)."""
    return dict(architecture="wrn16_2", num_classes=3, num_features=128, global_pool="avg",
                model_args=dict(conv_type="gc2l", groups=2, in_chans=1, drop_rate=0.0),
                pretrained_cfg=dict(input_size=(1, 12, 12), mean=(0.5,), std=(0.25,), crop_pct=1.0,
                                    interpolation="bilinear", first_conv="stem.conv", classifier="fc",
                                    label_names=["a", "b", "c"], num_classes=3, architecture="wrn16_2"))


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"stem.conv.weight": torch.randn(4, 1, 3, 3, generator=g), "fc.weight": torch.randn(3, 4, generator=g),
            "fc.bias": torch.randn(3, generator=g), "bn.num_batches_tracked": torch.tensor(7)}




@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Hugging Face-compatible endpoint on 127.0.0.1 (reads and writes), with HF_ENDPOINT, an empty
    HF_HOME cache and online mode pointing huggingface_hub at it."""
    from huggingface_hub import constants

    from tests.support.hf_endpoint import LocalHub

    with LocalHub() as hub:
        cache = tmp_path / "hf-home" / "hub"
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        # huggingface_hub builds its download URL template from HF_ENDPOINT at import
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        hub.cache = cache
        yield hub
