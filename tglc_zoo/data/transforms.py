"""Per-sample transforms: training augmentation (described in each dataset's ``augmentation``), float
conversion and normalisation with the dataset's mean/std."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .info import DatasetInfo

__all__ = ["tensor_transform", "imagenet_transform"]


def _normalize(info: DatasetInfo) -> list[Any]:
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(info.mean), list(info.std))]


def tensor_transform(*augment: Callable[[], Any], base: Sequence[Callable[[], Any]] = ()
                     ) -> Callable[[DatasetInfo, bool, bool, int | None], Any]:
    """The transform factory of a fixed-size dataset of uint8 tensors: ``base`` always (e.g. padding to the
    dataset's size), ``augment`` (factories of torchvision v2 transforms) when training, then normalisation."""
    def build(info: DatasetInfo, train: bool, use_augment: bool, image_size: int | None) -> Any:
        from torchvision.transforms import v2

        if image_size is not None and image_size != info.input_size[-1]:
            raise ValueError(f"image_size={image_size} is only supported for imagenet; {info.name} images are "
                             f"{info.input_size[-1]}x{info.input_size[-1]}")
        aug: Sequence[Any] = [make() for make in augment] if train and use_augment else []
        return v2.Compose([*(make() for make in base), *aug, *_normalize(info)])
    return build


def imagenet_transform(info: DatasetInfo, train: bool, augment: bool, image_size: int | None) -> Any:
    """Random-resized crop + flip for training; resize to ``size / 0.875`` and centre crop for evaluation."""
    from torchvision.transforms import v2

    size = image_size or info.input_size[-1]
    if train and augment:
        head = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        head = [v2.Resize(int(round(size / 0.875)), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*head, v2.PILToTensor(), *_normalize(info)])
