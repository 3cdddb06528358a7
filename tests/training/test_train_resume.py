"""Exact resume, and what happens to bad checkpoints, bad combinations and killed runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tglc_zoo.training import (
    CheckpointError,
    ModelDatasetMismatchError,
    RunExistsError,
    TrainConfig,
    load_checkpoint,
    train,
)

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, tensorboard=False)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_is_bit_identical(fmnist_dir: Path, tmp_path: Path) -> None:
    # fmnist: random crop + flip augmentation, so the restored RNG state matters
    common = dict(model="wrn16_2_gc2l_n2", dataset="fmnist", data_dir=str(fmnist_dir), batch_size=16,
                  limit_train_batches=4, limit_val_batches=4, lr_milestones=[1], drop_rate=0.2, **QUIET)
    straight = train(TrainConfig(output=str(tmp_path / "a"), epochs=2, **common), log=lambda m: None)
    train(TrainConfig(output=str(tmp_path / "b"), epochs=1, **common), log=lambda m: None)
    resumed = train(TrainConfig(output=str(tmp_path / "b"), epochs=2, resume=str(tmp_path / "b"), **common),
                    log=lambda m: None)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    a, b = (load_checkpoint(tmp_path / run / "checkpoints" / "last.pt") for run in ("a", "b"))
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert all(torch.equal(a["optimizer"]["state"][k]["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])
               for k in a["optimizer"]["state"])
    assert a["scheduler"] == b["scheduler"] and torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    for key in ("train_loss", "test_loss", "test_acc", "lr"):
        assert straight.history[1][key] == resumed.history[1][key]
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 2


def test_corrupt_resume_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "r"
    train(TrainConfig(model="wrn16_2", dataset="digits", output=str(run), epochs=1, batch_size=32,
                      limit_train_batches=2, **QUIET), log=lambda m: None)
    last = run / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=r"corrupt.*best\.pt"):
        train(TrainConfig(model="wrn16_2", dataset="digits", output=str(run), epochs=2, resume=str(run), **QUIET))
    last.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(last)
    torch.save({"format": "something else"}, last)
    with pytest.raises(CheckpointError, match="not a tglc_zoo training checkpoint"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(TrainConfig(model="wrn16_2", dataset="digits", output=str(tmp_path / "x"), resume=str(tmp_path), **QUIET))


def test_model_dataset_mismatch(tmp_path: Path) -> None:
    run = tmp_path / "r"
    common = dict(epochs=1, batch_size=32, limit_train_batches=1, **QUIET)
    with pytest.raises(ModelDatasetMismatchError, match=r"in_chans=3 .*'digits' has in_chans=1"):
        train(TrainConfig(model="wrn16_2", dataset="digits", output=str(run), model_kwargs={"in_chans": 3}, **common))
    with pytest.raises(ModelDatasetMismatchError, match="cannot build model 'wrn16_2_gc_n3'"):
        train(TrainConfig(model="wrn16_2_gc_n3", dataset="digits", output=str(run), **common))
    with pytest.raises(ModelDatasetMismatchError, match=r"layer .*channels"):
        train(TrainConfig(model="wrn16_2", groups=3, conv_type="gc", dataset="digits", output=str(run), **common))
    train(TrainConfig(model="wrn16_2", dataset="digits", output=str(run), **common), log=lambda m: None)
    with pytest.raises(ModelDatasetMismatchError,
                       match=r"started with other settings \(model: 'wrn16_2' -> 'wrn16_2_gc_n2'\)"):
        train(TrainConfig(model="wrn16_2_gc_n2", dataset="digits", output=str(run), resume=str(run), **common))
    with pytest.raises(RunExistsError, match="--resume"):
        train(TrainConfig(model="wrn16_2", dataset="digits", output=str(run), **common))


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "train.py"), *args]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path: Path) -> None:
    steps = 20  # per epoch; the process is killed as soon as epoch 1 is logged, i.e. early in epoch 2
    args = ["--model", "wrn16_2", "--dataset", "digits", "--batch-size", "32", "--limit-train-batches", str(steps),
            "--limit-val-batches", "3", "--epochs", "3", "--lr-milestones", "2", "--no-progress", "--no-tensorboard",
            "--seed", "3"]
    straight = tmp_path / "straight"
    train(TrainConfig(model="wrn16_2", dataset="digits", batch_size=32, limit_train_batches=steps, limit_val_batches=3,
                      epochs=3, lr_milestones=[2], seed=3, output=str(straight), **QUIET), log=lambda m: None)
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(*args, "--output", str(run)), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:  # the epoch line is printed after the epoch's checkpoint is written
            if "epoch 1/3:" in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")  # intact: written atomically
    assert ckpt["epoch"] == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] == [r["epoch"] for r in ckpt["history"]]
    out = subprocess.run(_cli("--resume", str(run), "--no-progress"), env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert "resumed after epoch 1" in out.stdout
    assert _same(_weights(run), _weights(straight))  # nothing lost: the same weights as a run never killed
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
