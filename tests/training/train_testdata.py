"""Writers of small datasets in CIFAR and ImageFolder formats (shared by the training tests)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar(root: Path, name: str = "cifar10", n_train: int = 160, n_test: int = 64, seed: int = 0) -> Path:
    """CIFAR python batches in torchvision's layout, with learnable structure (class = colour pattern)."""
    rng = np.random.default_rng(seed)
    num_classes = 10 if name == "cifar10" else 100
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def batch(n: int) -> dict:
        labels = rng.integers(0, num_classes, n)
        base = (labels[:, None] * 25 % 256).astype(np.float64)
        data = np.clip(base + rng.normal(0, 30, (n, 3072)), 0, 255).astype(np.uint8)
        return {b"data": data, label_key.encode(): labels.tolist(), b"batch_label": b"test"}

    if name == "cifar10":
        per = n_train // 5
        for i in range(1, 6):
            (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(per), protocol=2))
        (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test), protocol=2))
        meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        (folder / "train").write_bytes(pickle.dumps(batch(n_train), protocol=2))
        (folder / "test").write_bytes(pickle.dumps(batch(n_test), protocol=2))
        meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)]}
        (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_imagefolder(root: Path, classes: tuple[str, ...] = ("n01", "n02", "n03"), n_train: int = 8,
                      n_val: int = 4, size: int = 20, seed: int = 0) -> Path:
    """An ImageNet-style train/ and val/ tree of tiny PNGs (each class a different colour)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                colour = np.array([(c * 90) % 256, (c * 40 + 60) % 256, (255 - c * 70) % 256], dtype=np.float64)
                img = np.clip(colour + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"img{i}.png")
    return root
