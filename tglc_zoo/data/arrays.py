"""In-memory image datasets (the readers of CIFAR, Fashion-MNIST and digits return these)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["ArrayDataset"]


class ArrayDataset(Dataset):
    """In-memory images (uint8, N x C x H x W) and integer labels, with an optional transform."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str],
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 N x C x H x W tensor, got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.images = images
        self.targets = targets.long()
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.images[index]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])
