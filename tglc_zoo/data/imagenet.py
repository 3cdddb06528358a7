"""ImageNet in torchvision's ``ImageFolder`` layout: ``DATA_DIR/train/<class>/*`` and ``DATA_DIR/val/<class>/*``."""
from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from .info import DatasetInfo, data_not_found

__all__ = ["load_imagenet"]


def load_imagenet(info: DatasetInfo, root: str | os.PathLike[str] | None, train: bool,
                  download: bool = False) -> Dataset:
    """``ImageFolder(root/train)`` or ``ImageFolder(root/val)`` (its transform is set by the caller)."""
    from torchvision.datasets import ImageFolder

    folder = Path(root or ".").expanduser() / ("train" if train else "val")
    if not folder.is_dir():
        raise data_not_found(info, [folder])
    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise data_not_found(info, [folder], str(exc)) from exc
