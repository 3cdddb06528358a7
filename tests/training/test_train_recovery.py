"""Step-level checkpoints, SIGTERM, ``--resume auto`` and the run folder's lock, in one process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tglc_zoo.errors import RunExistsError, RunLockedError
from tglc_zoo.training import TrainConfig, load_checkpoint, train
from tglc_zoo.training.checkpoint_dir import latest_entry
from tglc_zoo.training.cli import build_parser, config_from_args

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, tensorboard=False)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "train.py"), *args]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    entry = latest_entry(run_dir)
    assert entry is not None
    return dict(load_checkpoint(entry)["model"])


def _latest_step(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"])
    except (OSError, ValueError):
        return -1


def test_sigterm_saves_mid_epoch_and_the_resumed_run_is_bit_identical(fmnist_dir: Path, tmp_path: Path) -> None:
    # fmnist: random crop + flip, so the restored generators matter; dropout too
    args = ["--model", "wrn16_2_gc2l_n2", "--dataset", "fmnist", "--data-dir", str(fmnist_dir), "--batch-size", "16",
            "--epochs", "2", "--limit-train-batches", "12", "--limit-val-batches", "2", "--drop-rate", "0.2",
            "--checkpoint-every", "3", "--no-progress", "--no-tensorboard"]
    straight = subprocess.run(_cli(*args, "--output", str(tmp_path / "a")), env=ENV, capture_output=True, text=True,
                              timeout=300)
    assert straight.returncode == 0, straight.stderr
    run = tmp_path / "b"
    proc = subprocess.Popen(_cli(*args, "--output", str(run)), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while _latest_step(run) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM after step" in err and f"tglc-train --resume {run}" in err
    ckpt = load_checkpoint(latest_entry(run))  # type: ignore[arg-type]
    assert 0 < ckpt["global_step"] < 24
    resumed = subprocess.run(_cli("--resume", str(run), "--no-progress"), env=ENV, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after epoch" in resumed.stdout
    a, b = _weights(tmp_path / "a"), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(rows_a, rows_b, strict=True):  # the interrupted epoch reports what the straight one did
        assert (ra["train_loss"], ra["test_acc"], ra["train_samples"]) == (rb["train_loss"], rb["test_acc"],
                                                                           rb["train_samples"])


def test_resume_auto_starts_then_continues_and_keeps_the_last_k(tmp_path: Path) -> None:
    run = tmp_path / "r"
    common = dict(model="wrn16_2", dataset="digits", output=str(run), resume="auto", batch_size=64,
                  limit_train_batches=5, limit_val_batches=1, checkpoint_every=2, keep_checkpoints=2, **QUIET)
    train(TrainConfig(epochs=1, **common), log=lambda m: None)  # nothing there: a fresh start
    logs: list[str] = []
    train(TrainConfig(epochs=2, **common), log=logs.append)  # a run there: it continues
    assert any("resumed after epoch 1" in line for line in logs)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    steps = [n for n in names if n.startswith("step-")]
    assert steps == ["step-00000008.pt", "step-00000010.pt"], names  # the last 2 of 2, 4, 5, 6, 8, 10
    assert {"last.pt", "best.pt", "latest.json"} <= set(names)
    assert json.loads((run / "checkpoints" / "latest.json").read_text()) == {"entry": "step-00000010.pt", "step": 10}
    assert os.path.samefile(run / "checkpoints" / "last.pt", run / "checkpoints" / "step-00000010.pt")


def test_a_write_cut_short_by_a_kill_does_not_block_the_restart(tmp_path: Path) -> None:
    # a rank killed while it rewrote metrics.csv leaves that write's temporary (seen in CI: the torchrun
    # restart then refused its own run folder as one of "files that are not a tglc-train run")
    import tempfile
    run = tmp_path / "r"
    common = dict(model="wrn16_2", dataset="digits", output=str(run), resume="auto", batch_size=64,
                  limit_train_batches=2, limit_val_batches=1, **QUIET)
    train(TrainConfig(epochs=1, **common), log=lambda m: None)
    left = [Path(tempfile.mkstemp(prefix=f".{name}.tmp-", suffix=Path(name).suffix, dir=run)[1])
            for name in ("metrics.csv", "config.json", "curves.png")]
    logs: list[str] = []
    train(TrainConfig(epochs=2, **common), log=logs.append)
    assert any("resumed after epoch 1" in line for line in logs)
    assert not any(p.exists() for p in left)
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header and two epochs
    # a temporary of a file that is not the run's is still somebody else's file
    (run / ".notes.txt.tmp-abcdefgh.txt").write_text("mine")
    with pytest.raises(RunExistsError, match=r"\.notes\.txt\.tmp-abcdefgh\.txt"):
        train(TrainConfig(epochs=3, **common), log=lambda m: None)


def test_a_second_trainer_on_the_same_folder_is_refused_and_names_the_first(tmp_path: Path) -> None:
    run = tmp_path / "r"
    args = ["--model", "wrn16_2", "--dataset", "digits", "--epochs", "50", "--batch-size", "32", "--no-progress",
            "--no-tensorboard", "--output", str(run)]
    first = subprocess.Popen(_cli(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and str(first.pid) not in ((run / ".lock").read_text()
                                                                      if (run / ".lock").is_file() else ""):
            time.sleep(0.05)
        second = subprocess.run(_cli(*args, "--resume", "auto"), env=ENV, capture_output=True, text=True,
                                timeout=120)
        assert first.poll() is None, "the first trainer stopped before the second one started"
    finally:
        first.kill()
        first.wait(timeout=60)
    assert second.returncode == 2
    assert f"is being written by another trainer: pid {first.pid} on host" in second.stderr, second.stderr
    assert "started 20" in second.stderr


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started": "2026-01-01T00:00:00"}))
    logs: list[str] = []
    train(TrainConfig(model="wrn16_2", dataset="digits", output=str(run), epochs=1, batch_size=64,
                      limit_train_batches=1, limit_val_batches=1, **QUIET), log=logs.append)
    assert any("took over the lock of a trainer that stopped without releasing it (pid 999999 on host elsewhere"
               in line for line in logs)
    record = json.loads((run / ".lock").read_text())
    assert record["pid"] == os.getpid() and record["released"] is True


def test_a_held_lock_refuses_in_process_too(tmp_path: Path) -> None:
    from tglc_zoo.training.run_folder import RunLock

    with RunLock(tmp_path / "r"), pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path / "r").acquire()


@pytest.mark.parametrize("extra, message", [
    (["--model-kwargs", '{"features_only": true}'], r"feature extractor.*no classifier"),
    (["--model-kwargs", '{"groups": 8}', "--groups", "2"], r"groups: --model-kwargs says 8, --groups says 2"),
])
def test_model_options_that_cannot_train_are_refused(extra: list[str], message: str) -> None:
    parser = build_parser()
    args = parser.parse_args(["--model", "wrn16_2_gc2l_n2", "--dataset", "digits", "--output", "x", *extra])
    with pytest.raises(ValueError, match=message):
        config_from_args(args, parser)


def test_ctrl_c_asks_to_stop_after_the_step_and_a_second_one_stops_at_once() -> None:
    from tglc_zoo.distributed.context import DistContext
    from tglc_zoo.training.stop import StopSignals

    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.agreed(DistContext(0, 1, 0, torch.device("cpu"))) == signal.SIGINT  # recorded, not raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before
