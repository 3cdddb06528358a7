"""scikit-learn's 8x8 digits with a fixed split: ``train_test_split(test_size=360, stratify=y,
random_state=0)`` → 1,437 train / 360 test images."""
from __future__ import annotations

import os

import numpy as np
import torch

from .arrays import ArrayDataset
from .info import DatasetInfo, data_not_found

__all__ = ["load_digits"]


def load_digits(info: DatasetInfo, root: str | os.PathLike[str] | None, train: bool,
                download: bool = False) -> ArrayDataset:
    """The digits split; pixel values 0..16 become uint8 as ``round(v * 255 / 16)`` (``root`` is ignored)."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise data_not_found(info, ["sklearn.datasets.load_digits"], "scikit-learn is not installed") from exc
    bunch = _sk_load_digits()
    images = np.round(bunch.images * 255.0 / 16.0).astype(np.uint8)
    targets = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(targets)), test_size=360, stratify=targets, random_state=0)
    idx = np.sort(train_idx if train else test_idx)
    return ArrayDataset(torch.from_numpy(images[idx]).unsqueeze(1), torch.from_numpy(targets[idx]), info.label_names)
