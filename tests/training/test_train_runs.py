"""A few steps of training on each kind of dataset leave metrics, a plot and loadable checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tglc_zoo
from tglc_zoo.training import TrainConfig, load_checkpoint, train
from tglc_zoo.training.publish import model_from_checkpoint

QUIET = dict(progress=False, tensorboard=False)


def _check_run(run_dir: Path, epochs: int) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))
    csv_lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,train_loss") and len(csv_lines) == epochs + 1
    png = (run_dir / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["momentum"] == 0.9
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # torch.load(weights_only=True) inside
    assert ckpt["epoch"] == epochs and (run_dir / "checkpoints" / "best.pt").is_file()
    row = ckpt["history"][-1]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "test_err", "lr", "train_img_per_s"):
        assert isinstance(row[key], float) and row[key] == row[key]
    model, info = model_from_checkpoint(ckpt)
    assert model.num_classes == info.num_classes
    return ckpt


def test_fmnist_run_learns(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model="wrn16_2_gc2l_n2", dataset="fmnist", data_dir=str(fmnist_dir), output=str(tmp_path / "r"),
                      epochs=2, batch_size=64, lr_milestones=[1], **QUIET)
    result = train(cfg, log=lambda m: None)
    ckpt = _check_run(tmp_path / "r", 2)
    assert ckpt["model_args"]["conv_type"] == "gc2l" and ckpt["dataset"]["in_chans"] == 1
    assert result.history[0]["lr"] == pytest.approx(0.1) and result.history[1]["lr"] == pytest.approx(0.01)
    assert result.history[-1]["test_samples"] == 256
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    assert result.final["test_acc"] > 0.15  # 16 steps on real data already beat chance (0.1)


def test_digits_run(tmp_path: Path) -> None:
    cfg = TrainConfig(model="wrn16_2_gc_n4", dataset="digits", output=str(tmp_path / "r"), epochs=1, batch_size=32,
                      limit_train_batches=4, limit_val_batches=2, **QUIET)
    result = train(cfg, log=lambda m: None)
    _check_run(tmp_path / "r", 1)
    assert result.final["train_samples"] == 128 and result.final["test_samples"] == 64


def test_cifar_folder_run(cifar_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model="wrn16_2_shuffle_n2", dataset="cifar10", data_dir=str(cifar_dir),
                      output=str(tmp_path / "r"), recipe="cifar", epochs=1, batch_size=32, **QUIET)
    result = train(cfg, log=lambda m: None)
    ckpt = _check_run(tmp_path / "r", 1)
    assert ckpt["recipe"]["name"] == "cifar" and ckpt["recipe"]["weight_decay"] == 5e-4
    assert ckpt["dataset"]["label_names"][0] == "class0" and result.final["train_samples"] == 160


def test_imagefolder_run(imagenet_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model="wrn16_2", dataset="imagenet", data_dir=str(imagenet_dir), output=str(tmp_path / "r"),
                      image_size=16, epochs=1, batch_size=8, **QUIET)
    train(cfg, log=lambda m: None)
    ckpt = _check_run(tmp_path / "r", 1)
    assert ckpt["recipe"]["name"] == "imagenet" and ckpt["dataset"]["num_classes"] == 3
    model, _ = model_from_checkpoint(ckpt)
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 3)


def test_publish_and_reload(tmp_path: Path) -> None:
    cfg = TrainConfig(model="wrn16_2_gc2l_n2", dataset="digits", output=str(tmp_path / "r"), epochs=1, batch_size=32,
                      limit_train_batches=3, publish=str(tmp_path / "pub"), **QUIET)
    result = train(cfg, log=lambda m: None)
    assert result.published is not None and (tmp_path / "pub" / "model.safetensors").is_file()
    card = (tmp_path / "pub" / "README.md").read_text()
    assert "digits" in card and f"{100 * result.final['test_acc']:.2f}" in card and "wall time" in card
    model = tglc_zoo.from_pretrained(str(tmp_path / "pub")).eval()
    trained, _ = model_from_checkpoint(load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt"))
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), trained(x))
    assert model.pretrained_cfg["input_size"] == (1, 8, 8)
    hub = torch.hub.load(str(Path(__file__).resolve().parents[2]), "wrn16_2_gc2l_n2", source="local",
                         pretrained=str(tmp_path / "pub"), trust_repo=True).eval()
    with torch.no_grad():
        assert torch.equal(hub(x), trained(x))


def test_bf16_autocast_and_channels_last_on_cpu(tmp_path: Path) -> None:
    cfg = TrainConfig(model="wrn16_2_gc2l_n2", dataset="digits", output=str(tmp_path / "r"), epochs=1, batch_size=16,
                      limit_train_batches=1, limit_val_batches=1, amp="bf16", channels_last=True, **QUIET)
    result = train(cfg, log=lambda m: None)
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert ckpt["config"]["amp"] == "bf16" and ckpt["scaler"] is None  # no loss scaling for bf16
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt["model"].values())
    assert result.final["train_samples"] == 16
