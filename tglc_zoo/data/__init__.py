"""Datasets and transforms for training and evaluating zoo models.

Each dataset is one :class:`DatasetInfo` in :data:`DATASETS`: fixed facts (channels, classes,
normalisation, label names, default recipe), a reader and a transform factory. Five ship:

* ``cifar10`` / ``cifar100`` — the python-pickle batches, read without torchvision's md5 check
  through an unpickler that only admits numpy arrays (``download=True`` asks torchvision first);
* ``imagenet`` — an ``ImageFolder`` layout (``DATA_DIR/train/<class>/*``, ``DATA_DIR/val/<class>/*``);
* ``fmnist`` — Fashion-MNIST idx files: Debian's ``dataset-fashion-mnist`` folder,
  ``$TGLC_FMNIST_DIR``, or a torchvision root;
* ``digits`` — scikit-learn's 8×8 digits with a fixed split (1,437 / 360).

A missing dataset raises :class:`~tglc_zoo.errors.DataNotFoundError`, which lists every place that
was searched and how to obtain the data.
"""
from ..errors import DataNotFoundError
from .arrays import ArrayDataset
from .fmnist import FMNIST_SYSTEM_DIR, prepare_torchvision_fmnist, read_idx
from .info import DatasetInfo
from .registry import DATASETS, build_datasets, build_transforms, get_dataset_info, load_dataset

__all__ = ["DATASETS", "ArrayDataset", "DataNotFoundError", "DatasetInfo", "FMNIST_SYSTEM_DIR", "build_datasets",
           "build_transforms", "get_dataset_info", "load_dataset", "prepare_torchvision_fmnist", "read_idx"]
