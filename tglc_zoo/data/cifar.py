"""CIFAR-10/100 python batches, read without torchvision's md5 check through an unpickler that only
admits numpy arrays (``download=True`` asks torchvision to fetch them first)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arrays import ArrayDataset
from .info import DatasetInfo, data_not_found

__all__ = ["load_cifar"]

# folder, train batches, test batches, meta file, label key, label-names key
_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
                "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: only numpy arrays/dtypes may be reconstructed."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR batch (expected a dict, got {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _download(info: DatasetInfo, root: Path, train: bool, folder_name: str) -> None:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if info.name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        cls(str(root), train=train, download=True)
    except Exception as exc:
        raise data_not_found(info, [root / folder_name], f"download failed: {exc}") from exc


def load_cifar(info: DatasetInfo, root: str | os.PathLike[str] | None, train: bool,
               download: bool = False) -> ArrayDataset:
    """Read CIFAR-10/100 python batches below ``root`` (``root`` itself may be the batch folder)."""
    folder_name, train_files, test_files, meta_file, label_key, names_key = _LAYOUT[info.name]
    root = Path(root or ".").expanduser()
    if download:
        _download(info, root, train, folder_name)
    candidates = [root / folder_name, root]
    folder = next((c for c in candidates if (c / meta_file).is_file()), None)
    if folder is None:
        raise data_not_found(info, [c / meta_file for c in candidates])
    files = train_files if train else test_files
    missing = [folder / f for f in files if not (folder / f).is_file()]
    if missing:
        raise data_not_found(info, missing, "batch files missing")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for fname in files:
        batch = _load_pickle(folder / fname)
        if "data" not in batch or label_key not in batch:
            raise ValueError(f"{folder / fname} lacks 'data' or {label_key!r}; keys: {sorted(batch)}")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(int(v) for v in batch[label_key])
    meta = _load_pickle(folder / meta_file)
    classes = ([c.decode("latin1") if isinstance(c, bytes) else str(c) for c in meta.get(names_key, [])]
               or [str(i) for i in range(info.num_classes or 0)])
    x = torch.from_numpy(np.concatenate(images))
    y = torch.tensor(labels, dtype=torch.long)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise ValueError(f"{folder}: labels span [{int(y.min())}, {int(y.max())}] but there are {len(classes)} classes")
    return ArrayDataset(x, y, classes)
