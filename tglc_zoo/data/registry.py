"""The datasets tglc_zoo trains and evaluates on, one :class:`DatasetInfo` each.

Adding a dataset means writing its reader (``load(info, data_dir, train, download)``) and adding one
entry here.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from ..util.choices import check_choice
from .cifar import load_cifar
from .digits import load_digits
from .fmnist import HOW_TO_GET as FMNIST_HOW_TO_GET
from .fmnist import load_fmnist
from .imagenet import load_imagenet
from .info import DatasetInfo, data_not_found
from .transforms import imagenet_transform, tensor_transform

__all__ = ["DATASETS", "get_dataset_info", "load_dataset", "build_transforms", "build_datasets"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FMNIST_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")


def _pad(pixels: int) -> Callable[[], Any]:
    def pad() -> Any:
        from torchvision.transforms import v2
        return v2.Pad(pixels)
    return pad


def _crop_flip(size: int, pad: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Factories of a padded random crop and a horizontal flip (torchvision is imported when they are called)."""
    def crop() -> Any:
        from torchvision.transforms import v2
        return v2.RandomCrop(size, padding=pad)

    def flip() -> Any:
        from torchvision.transforms import v2
        return v2.RandomHorizontalFlip()
    return crop, flip


def _cifar(name: str, num_classes: int, mean: tuple[float, ...], std: tuple[float, ...],
           labels: tuple[str, ...], archive: str, folder: str) -> DatasetInfo:
    return DatasetInfo(
        name, 3, num_classes, (3, 32, 32), mean, std, labels, "cifar",
        f"pass --download where a network exists (torchvision fetches {archive}), or extract {archive} from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html so that DATA_DIR/{folder}/ exists",
        "pad 4 pixels each side, random 32x32 crop, random horizontal flip",
        load=load_cifar, transform=tensor_transform(*_crop_flip(32, 4)), needs_data_dir=True,
        classes_from_files=True, hub_id=f"uoft-cs/{name}")


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    _cifar("cifar10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), _CIFAR10_LABELS,
           "cifar-10-python.tar.gz", "cifar-10-batches-py"),
    _cifar("cifar100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (),
           "cifar-100-python.tar.gz", "cifar-100-python"),
    DatasetInfo(
        "imagenet", 3, None, (3, 224, 224), _IMAGENET_MEAN, _IMAGENET_STD, (), "imagenet",
        "download ILSVRC2012 from https://image-net.org and arrange it as DATA_DIR/train/<wnid>/*.JPEG and "
        "DATA_DIR/val/<wnid>/*.JPEG (torchvision's ImageFolder layout)",
        "random-resized crop (scale 0.08-1, aspect 3/4-4/3), random horizontal flip; eval: resize to "
        "size/0.875, center crop",
        load=load_imagenet, transform=imagenet_transform, needs_data_dir=True, classes_from_files=True,
        hub_id="ILSVRC/imagenet-1k"),
    DatasetInfo(
        "fmnist", 1, 10, (1, 28, 28), (0.2860,), (0.3530,), _FMNIST_LABELS, "fmnist", FMNIST_HOW_TO_GET,
        "pad 2 pixels each side, random 28x28 crop, random horizontal flip",
        load=load_fmnist, transform=tensor_transform(*_crop_flip(28, 2)), hub_id="zalando-datasets/fashion_mnist"),
    # the same images zero-padded to CIFAR's 32x32 (mean and std of the padded images), with CIFAR's augmentation
    DatasetInfo(
        "fmnist32", 1, 10, (1, 32, 32), (0.2190,), (0.3318,), _FMNIST_LABELS, "fmnist", FMNIST_HOW_TO_GET,
        "zero-pad to 32x32, then pad 4 pixels each side, random 32x32 crop, random horizontal flip",
        load=load_fmnist, transform=tensor_transform(*_crop_flip(32, 4), base=[_pad(2)]),
        hub_id="zalando-datasets/fashion_mnist"),
    DatasetInfo(
        "digits", 1, 10, (1, 8, 8), (0.3054,), (0.3760,), tuple(str(i) for i in range(10)), "fmnist",
        "it ships inside scikit-learn (`pip install scikit-learn`, or tglc_zoo's [train] extra)", "none",
        load=load_digits, transform=tensor_transform()),
)}


def get_dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; unknown names raise an error listing the choices."""
    return DATASETS[check_choice("dataset", name, DATASETS)]


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, *, train: bool,
                 download: bool = False) -> Dataset:
    """One split of ``name`` as stored (no transform): uint8 images and integer labels, with ``.classes``."""
    info = get_dataset_info(name)
    if info.needs_data_dir and data_dir is None:
        raise data_not_found(info, [], "no --data-dir given")
    return info.load(info, data_dir, train, download)


def build_transforms(name: str, train: bool, *, augment: bool = True, image_size: int | None = None
                     ) -> Callable[[Any], Any]:
    """The per-sample transform of ``name``: augmentation (training only), float conversion, normalisation.

    ``image_size`` changes the crop size of imagenet (default 224); the other datasets keep their size.
    """
    info = get_dataset_info(name)
    return info.transform(info, train, augment, image_size)


def build_datasets(name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = False,
                   augment: bool = True, image_size: int | None = None) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Train and test datasets of ``name`` with their transforms, and the dataset's info.

    The returned info has ``num_classes``, ``label_names`` and ``input_size`` filled from the files and
    options where they vary (CIFAR's stored names, imagenet's class folders and crop size).
    ``data_dir`` is required for cifar10/cifar100/imagenet; fmnist falls back to ``$TGLC_FMNIST_DIR``
    and then the Debian folder; digits ignores it.
    """
    info = get_dataset_info(name)
    train_tf = info.transform(info, True, augment, image_size)
    test_tf = info.transform(info, False, augment, image_size)
    train_ds = load_dataset(name, data_dir, train=True, download=download)
    test_ds = load_dataset(name, data_dir, train=False)
    train_ds.transform, test_ds.transform = train_tf, test_tf  # type: ignore[attr-defined]
    if info.classes_from_files:
        classes = tuple(train_ds.classes)  # type: ignore[attr-defined]
        if list(classes) != list(test_ds.classes):  # type: ignore[attr-defined]
            raise ValueError(f"{name}: the training split has {len(classes)} classes and the test split "
                             f"{len(test_ds.classes)}; they must hold the same classes")  # type: ignore[attr-defined]
        size = image_size or info.input_size[-1]
        info = info.replace(num_classes=len(classes), label_names=classes, input_size=(info.in_chans, size, size))
    return train_ds, test_ds, info
