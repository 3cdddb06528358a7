"""Datasets: every format read from small files, fixed facts, clear errors."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from train_testdata import write_cifar

from tglc_zoo.data import (
    DATASETS,
    DataNotFoundError,
    build_datasets,
    get_dataset_info,
    load_dataset,
    prepare_torchvision_fmnist,
)


def test_fmnist_reads_gz_folder_and_torchvision_root(fmnist_dir: Path, tmp_path: Path) -> None:
    train = load_dataset("fmnist", fmnist_dir, train=True)
    assert len(train) == 512 and train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    raw = prepare_torchvision_fmnist(tmp_path / "tv", source=fmnist_dir)
    assert raw == tmp_path / "tv" / "FashionMNIST" / "raw" and (raw / "t10k-labels-idx1-ubyte").is_file()
    again = load_dataset("fmnist", tmp_path / "tv", train=True)  # torchvision root, decompressed files
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)
    import torchvision

    tv = torchvision.datasets.FashionMNIST(str(tmp_path / "tv"), train=False, download=False)
    assert torch.equal(tv.data, load_dataset("fmnist", fmnist_dir, train=False).images[:, 0])


def test_fmnist_transforms_normalise(fmnist_dir: Path) -> None:
    train, test, info = build_datasets("fmnist", fmnist_dir)
    assert (info.in_chans, info.num_classes, len(info.label_names)) == (1, 10, 10)
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
    mean = torch.stack([test[i][0] for i in range(len(test))]).mean()
    assert abs(float(mean)) < 0.15  # normalised with Fashion-MNIST's mean/std


def test_digits_split_is_fixed() -> None:
    train, test = load_dataset("digits", train=True), load_dataset("digits", train=False)
    assert (len(train), len(test)) == (1437, 360)
    assert torch.bincount(test.targets).min() >= 35  # stratified
    assert torch.equal(load_dataset("digits", train=False).images, test.images)
    assert int(train.images.max()) == 255


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_folder_without_md5(tmp_path: Path, name: str) -> None:
    root = write_cifar(tmp_path, name, n_train=50, n_test=20)
    train, test, info = build_datasets(name, root)
    assert (len(train), len(test)) == (50, 20)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < info.num_classes
    assert len(info.label_names) == info.num_classes
    sub = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    assert len(load_dataset(name, sub, train=False)) == 20  # the batch folder itself also works


def test_cifar_loader_refuses_pickled_code(tmp_path: Path) -> None:
    root = write_cifar(tmp_path, "cifar10", n_train=10, n_test=5)

    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pwned')",))

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_dataset("cifar10", root, train=False)


def test_imagefolder(imagenet_dir: Path) -> None:
    train, test, info = build_datasets("imagenet", imagenet_dir, image_size=16)
    assert info.num_classes == 3 and info.label_names == ("n01", "n02", "n03") and info.input_size == (3, 16, 16)
    x, y = train[0]
    assert x.shape == (3, 16, 16) and test[0][0].shape == (3, 16, 16)


@pytest.mark.parametrize("name,where", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                        ("imagenet", "train"), ("fmnist", "FashionMNIST/raw")])
def test_missing_data_says_where_and_how(tmp_path: Path, name: str, where: str) -> None:
    with pytest.raises(DataNotFoundError) as err:
        build_datasets(name, tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and where in msg and "To get it" in msg


def test_missing_data_dir_and_unknown_dataset() -> None:
    with pytest.raises(DataNotFoundError, match="no --data-dir"):
        build_datasets("cifar10", None)
    with pytest.raises(ValueError, match=r"did you mean 'cifar10'.*valid choices"):
        get_dataset_info("cifar-10")
    assert set(DATASETS) == {"cifar10", "cifar100", "imagenet", "fmnist", "fmnist32", "digits"}
