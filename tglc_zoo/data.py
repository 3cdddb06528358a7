"""Datasets and transforms for training and evaluating zoo models.

Five datasets are supported; each has fixed facts (:class:`DatasetInfo`: channels, classes,
normalisation, label names) and a loader that reads the data from local files:

* ``cifar10`` / ``cifar100`` -- the python-pickle batches (``cifar-10-batches-py/``,
  ``cifar-100-python/``).  They are read here without torchvision's md5 check, through a restricted
  unpickler that only admits numpy arrays.  ``download=True`` asks torchvision to fetch them first.
* ``imagenet`` -- an ``ImageFolder`` layout: ``DATA_DIR/train/<class>/*`` and ``DATA_DIR/val/<class>/*``.
* ``fmnist`` -- Fashion-MNIST idx files (``.gz`` or decompressed), either the Debian package's folder
  ``/usr/share/datasets/fashion-mnist/`` or a torchvision root (``ROOT/FashionMNIST/raw/``).
* ``digits`` -- scikit-learn's 8x8 digits with a fixed split: ``train_test_split(test_size=360,
  stratify=y, random_state=0)`` -> 1,437 train / 360 test images.

A missing dataset raises :class:`DataNotFoundError`, which lists every place that was searched and
how to obtain the data.
"""
from __future__ import annotations

import difflib
import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "DATASETS", "DatasetInfo", "DataNotFoundError", "get_dataset_info", "build_transforms", "build_datasets",
    "ArrayDataset", "load_cifar", "load_fmnist", "load_digits", "load_imagenet", "FMNIST_SYSTEM_DIR",
    "prepare_torchvision_fmnist",
]

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """Fixed facts of a dataset.  ``num_classes`` is ``None`` when it comes from the files (imagenet)."""

    name: str
    in_chans: int
    num_classes: int | None
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label_names: tuple[str, ...]
    default_recipe: str
    how_to_get: str
    augmentation: str


_CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FMNIST_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")

DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        "cifar10", 3, 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), _CIFAR10_LABELS,
        "cifar",
        "pass --download where a network exists (torchvision fetches cifar-10-python.tar.gz), or extract "
        "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html so that "
        "DATA_DIR/cifar-10-batches-py/ exists",
        "pad 4 pixels each side, random 32x32 crop, random horizontal flip"),
    "cifar100": DatasetInfo(
        "cifar100", 3, 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (), "cifar",
        "pass --download where a network exists (torchvision fetches cifar-100-python.tar.gz), or extract "
        "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html so that "
        "DATA_DIR/cifar-100-python/ exists",
        "pad 4 pixels each side, random 32x32 crop, random horizontal flip"),
    "imagenet": DatasetInfo(
        "imagenet", 3, None, (3, 224, 224), _IMAGENET_MEAN, _IMAGENET_STD, (), "imagenet",
        "download ILSVRC2012 from https://image-net.org and arrange it as DATA_DIR/train/<wnid>/*.JPEG and "
        "DATA_DIR/val/<wnid>/*.JPEG (torchvision's ImageFolder layout)",
        "random-resized crop (scale 0.08-1, aspect 3/4-4/3), random horizontal flip; eval: resize to "
        "size/0.875, center crop"),
    "fmnist": DatasetInfo(
        "fmnist", 1, 10, (1, 28, 28), (0.2860,), (0.3530,), _FMNIST_LABELS, "fmnist",
        "on Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (installs the idx .gz files into "
        f"{FMNIST_SYSTEM_DIR}/), or pass a torchvision root that holds FashionMNIST/raw/ "
        "(torchvision.datasets.FashionMNIST(root, download=True) where a network exists)",
        "pad 2 pixels each side, random 28x28 crop, random horizontal flip"),
    "digits": DatasetInfo(
        "digits", 1, 10, (1, 8, 8), (0.3054,), (0.3760,), tuple(str(i) for i in range(10)), "fmnist",
        "it ships inside scikit-learn (`pip install scikit-learn`)",
        "none"),
}


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are not where they were looked for."""

    def __init__(self, dataset: str, searched: Sequence[str | os.PathLike[str]], how_to_get: str,
                 detail: str = "") -> None:
        places = "\n".join(f"  - {p}" for p in searched) or "  (no location given)"
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{dataset} data not found{extra}. Looked in:\n{places}\nTo get it: {how_to_get}")
        self.dataset = dataset
        self.searched = [str(p) for p in searched]


def get_dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; unknown names raise ``ValueError`` listing the choices."""
    if name not in DATASETS:
        hint = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown dataset {name!r}{extra}; valid choices: {list(DATASETS)}")
    return DATASETS[name]


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


# ---------------------------------------------------------------------------------------------- CIFAR

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


def _cifar_layout(name: str) -> tuple[str, list[str], list[str], str, str, str]:
    if name == "cifar10":
        return ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
                "labels", "label_names")
    return "cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names"


def load_cifar(name: str, root: str | os.PathLike[str], train: bool, *, download: bool = False) -> ArrayDataset:
    """Read CIFAR-10/100 python batches below ``root`` (``root`` itself may be the batch folder)."""
    info = get_dataset_info(name)
    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"load_cifar reads cifar10 or cifar100, not {name!r}")
    folder_name, train_files, test_files, meta_file, label_key, names_key = _cifar_layout(name)
    root = Path(root).expanduser()
    if download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        try:
            cls(str(root), train=train, download=True)
        except Exception as exc:  # noqa: BLE001 - no network, bad mirror, ...: say so and carry on looking
            raise DataNotFoundError(name, [root / folder_name], info.how_to_get,
                                    f"download failed: {exc}") from exc
    candidates = [root / folder_name, root]
    folder = next((c for c in candidates if (c / meta_file).is_file()), None)
    if folder is None:
        raise DataNotFoundError(name, [c / meta_file for c in candidates], info.how_to_get)
    files = train_files if train else test_files
    missing = [str(folder / f) for f in files if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(name, missing, info.how_to_get, "batch files missing")
    images, labels = [], []
    for fname in files:
        batch = _load_pickle(folder / fname)
        if "data" not in batch or label_key not in batch:
            raise ValueError(f"{folder / fname} lacks 'data' or {label_key!r}; keys: {sorted(batch)}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32))
        labels.extend(int(v) for v in batch[label_key])
    meta = _load_pickle(folder / meta_file)
    classes = [c.decode("latin1") if isinstance(c, bytes) else str(c) for c in meta.get(names_key, [])] or [str(i) for i in range(info.num_classes or 0)]
    x = torch.from_numpy(np.concatenate(images))
    y = torch.tensor(labels, dtype=torch.long)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise ValueError(f"{folder}: labels span [{int(y.min())}, {int(y.max())}] but there are {len(classes)} classes")
    return ArrayDataset(x, y, classes)


# --------------------------------------------------------------------------------------- Fashion-MNIST

_FMNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f"{path} is not an idx file (only {len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file (header {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _fmnist_candidates(root: str | os.PathLike[str] | None) -> list[Path]:
    if root is None:
        env = os.environ.get("TGLC_FMNIST_DIR")
        roots = [Path(env)] if env else []
        roots.append(FMNIST_SYSTEM_DIR)
    else:
        roots = [Path(root).expanduser()]
    out: list[Path] = []
    for r in roots:
        out += [r, r / "FashionMNIST" / "raw", r / "fashion-mnist"]
    return out


def load_fmnist(root: str | os.PathLike[str] | None, train: bool) -> ArrayDataset:
    """Read Fashion-MNIST idx files (gzipped or not) from ``root``; ``None`` means the system folder."""
    info = get_dataset_info("fmnist")
    img_stem, lbl_stem = _FMNIST_FILES[train]
    searched = _fmnist_candidates(root)
    for folder in searched:
        img_path, lbl_path = _find_idx(folder, img_stem), _find_idx(folder, lbl_stem)
        if img_path is not None and lbl_path is not None:
            images, labels = _read_idx(img_path), _read_idx(lbl_path)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(f"{img_path} / {lbl_path}: shapes {images.shape} and {labels.shape} do not match")
            x = torch.from_numpy(images.copy()).unsqueeze(1)
            return ArrayDataset(x, torch.from_numpy(labels.astype(np.int64)), info.label_names)
    raise DataNotFoundError("fmnist", [f / f"{img_stem}[.gz]" for f in searched], info.how_to_get)


def prepare_torchvision_fmnist(root: str | os.PathLike[str], source: str | os.PathLike[str] = FMNIST_SYSTEM_DIR
                               ) -> Path:
    """Decompress the idx files from ``source`` into ``root/FashionMNIST/raw/`` for torchvision's loader."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in _FMNIST_FILES.values():
        for stem in stems:
            src = _find_idx(Path(source), stem)
            if src is None:
                raise DataNotFoundError("fmnist", [Path(source) / f"{stem}[.gz]"], get_dataset_info("fmnist").how_to_get)
            dst = raw / stem
            if not dst.exists():
                tmp = dst.with_name(dst.name + ".tmp")
                with (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as fin, open(tmp, "wb") as fout:
                    fout.write(fin.read())
                os.replace(tmp, dst)
    return raw


# --------------------------------------------------------------------------------------------- digits

def load_digits(train: bool) -> ArrayDataset:
    """scikit-learn's digits, split ``train_test_split(test_size=360, stratify=y, random_state=0)``.

    Pixel values 0..16 are mapped to uint8 as ``round(v * 255 / 16)``.
    """
    info = get_dataset_info("digits")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise DataNotFoundError("digits", ["sklearn.datasets.load_digits"], info.how_to_get,
                                "scikit-learn is not installed") from exc
    bunch = _sk_load_digits()
    images = np.round(bunch.images * 255.0 / 16.0).astype(np.uint8)
    targets = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(targets)), test_size=360, stratify=targets, random_state=0)
    idx = np.sort(train_idx if train else test_idx)
    x = torch.from_numpy(images[idx]).unsqueeze(1)
    return ArrayDataset(x, torch.from_numpy(targets[idx]), info.label_names)


# ------------------------------------------------------------------------------------------- ImageNet

def load_imagenet(root: str | os.PathLike[str], train: bool,
                  transform: Callable[[Any], torch.Tensor] | None = None) -> Dataset:
    """``ImageFolder(root/train)`` or ``ImageFolder(root/val)``."""
    from torchvision.datasets import ImageFolder

    info = get_dataset_info("imagenet")
    split = "train" if train else "val"
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise DataNotFoundError("imagenet", [folder], info.how_to_get)
    try:
        return ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataNotFoundError("imagenet", [folder], info.how_to_get, str(exc)) from exc


# ------------------------------------------------------------------------------------------ transforms

def build_transforms(name: str, train: bool, *, augment: bool = True, image_size: int | None = None,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None
                     ) -> Callable[[Any], torch.Tensor]:
    """The per-sample transform of ``name``: augmentation (train only), float conversion, normalisation.

    ``image_size`` changes the crop size of imagenet (default 224); the other datasets keep their size.
    """
    from torchvision.transforms import v2

    info = get_dataset_info(name)
    norm = [v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean or info.mean), list(std or info.std))]
    if name == "imagenet":
        size = image_size or info.input_size[-1]
        if train and augment:
            head = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
        else:
            head = [v2.Resize(int(round(size / 0.875)), antialias=True), v2.CenterCrop(size)]
        return v2.Compose([*head, v2.PILToTensor(), *norm])
    if image_size is not None and image_size != info.input_size[-1]:
        raise ValueError(f"image_size={image_size} is only supported for imagenet; {name} images are "
                         f"{info.input_size[-1]}x{info.input_size[-1]}")
    aug: list[Any] = []
    if train and augment:
        if name in ("cifar10", "cifar100"):
            aug = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]
        elif name == "fmnist":
            aug = [v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip()]
    return v2.Compose([*aug, *norm])


def build_datasets(name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = False,
                   augment: bool = True, image_size: int | None = None) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Train and test datasets of ``name`` with their transforms, and the dataset's info.

    The returned info has ``num_classes`` and ``label_names`` filled from the files where they vary
    (imagenet).  ``data_dir`` is required for cifar10/cifar100/imagenet; fmnist falls back to
    ``$TGLC_FMNIST_DIR`` and then the Debian folder; digits ignores it.
    """
    info = get_dataset_info(name)
    train_tf = build_transforms(name, True, augment=augment, image_size=image_size)
    test_tf = build_transforms(name, False, image_size=image_size)
    if name in ("cifar10", "cifar100", "imagenet") and data_dir is None:
        raise DataNotFoundError(name, [], info.how_to_get, "no --data-dir given")
    if name in ("cifar10", "cifar100"):
        train_ds: Any = load_cifar(name, data_dir, True, download=download)  # type: ignore[arg-type]
        test_ds: Any = load_cifar(name, data_dir, False)  # type: ignore[arg-type]
    elif name == "fmnist":
        train_ds, test_ds = load_fmnist(data_dir, True), load_fmnist(data_dir, False)
    elif name == "digits":
        train_ds, test_ds = load_digits(True), load_digits(False)
    else:
        train_ds = load_imagenet(data_dir, True, train_tf)  # type: ignore[arg-type]
        test_ds = load_imagenet(data_dir, False, test_tf)  # type: ignore[arg-type]
        if train_ds.classes != test_ds.classes:
            raise ValueError(f"imagenet train/ has {len(train_ds.classes)} classes and val/ has "
                             f"{len(test_ds.classes)}; they must hold the same class folders")
        size = image_size or info.input_size[-1]
        info = DatasetInfo(**{**info.__dict__, "num_classes": len(train_ds.classes),
                              "label_names": tuple(train_ds.classes), "input_size": (3, size, size)})
        return train_ds, test_ds, info
    train_ds.transform, test_ds.transform = train_tf, test_tf
    if name in ("cifar10", "cifar100"):  # the names stored in the batches' meta file
        info = DatasetInfo(**{**info.__dict__, "label_names": tuple(train_ds.classes)})
    return train_ds, test_ds, info
