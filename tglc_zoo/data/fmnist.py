"""Fashion-MNIST idx files (gzipped or not): Debian's ``dataset-fashion-mnist`` folder,
``$TGLC_FMNIST_DIR``, or a torchvision root (``ROOT/FashionMNIST/raw/``)."""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError
from ..util.atomic import atomic_path
from .arrays import ArrayDataset
from .info import DatasetInfo, data_not_found

__all__ = ["FMNIST_SYSTEM_DIR", "HOW_TO_GET", "load_fmnist", "prepare_torchvision_fmnist", "read_idx"]

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = ("on Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (installs the idx .gz files into "
              f"{FMNIST_SYSTEM_DIR}/), or pass a torchvision root that holds FashionMNIST/raw/ "
              "(torchvision.datasets.FashionMNIST(root, download=True) where a network exists)")
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte idx file (``.gz`` or plain) as a numpy array of its declared shape."""
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
    return next((folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()), None)


def _candidates(root: str | os.PathLike[str] | None) -> list[Path]:
    if root is None:
        env = os.environ.get("TGLC_FMNIST_DIR")
        roots = ([Path(env)] if env else []) + [FMNIST_SYSTEM_DIR]
    else:
        roots = [Path(root).expanduser()]
    return [c for r in roots for c in (r, r / "FashionMNIST" / "raw", r / "fashion-mnist")]


def load_fmnist(info: DatasetInfo, root: str | os.PathLike[str] | None, train: bool,
                download: bool = False) -> ArrayDataset:
    """Read Fashion-MNIST from ``root``; ``None`` means ``$TGLC_FMNIST_DIR``, then the system folder."""
    img_stem, lbl_stem = _FILES[train]
    searched = _candidates(root)
    for folder in searched:
        img_path, lbl_path = _find_idx(folder, img_stem), _find_idx(folder, lbl_stem)
        if img_path is not None and lbl_path is not None:
            images, labels = read_idx(img_path), read_idx(lbl_path)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(f"{img_path} / {lbl_path}: shapes {images.shape} and {labels.shape} do not match")
            return ArrayDataset(torch.from_numpy(images.copy()).unsqueeze(1),
                                torch.from_numpy(labels.astype(np.int64)), info.label_names)
    raise data_not_found(info, [f / f"{img_stem}[.gz]" for f in searched])


def prepare_torchvision_fmnist(root: str | os.PathLike[str], source: str | os.PathLike[str] = FMNIST_SYSTEM_DIR
                               ) -> Path:
    """Decompress the idx files from ``source`` into ``root/FashionMNIST/raw/`` for torchvision's loader."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in _FILES.values():
        for stem in stems:
            src = _find_idx(Path(source), stem)
            if src is None:
                raise DataNotFoundError(f"fmnist data not found. Looked in:\n  - {Path(source) / f'{stem}[.gz]'}\n"
                                        f"To get it: {HOW_TO_GET}")
            dst = raw / stem
            if not dst.exists():
                with atomic_path(dst) as tmp, \
                        (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as fin, \
                        open(tmp, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
    return raw
