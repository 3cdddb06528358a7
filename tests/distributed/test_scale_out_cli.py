"""``scripts/train.py --parallel group`` under real torchrun processes: two launchers as two nodes, a random rank
killed and recovered bit for bit, a stalled rank, a single-process checkpoint resumed sharded."""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from torchrun_support import (
    TRAIN,
    alive,
    final_weights,
    latest_step,
    metrics,
    run,
    running,
    torchrun,
    wait_until,
    workers,
)

from tglc_zoo.distributed.launch import free_port

pytestmark = pytest.mark.slow

SMALL = ["--model", "wrn16_2_gc2l_n2", "--dataset", "digits", "--lr", "0.01", "--no-progress", "--no-tensorboard",
         "--limit-val-batches", "2"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert set(a) == set(b)
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_two_launchers_as_two_nodes_match_the_single_process_losses(tmp_path: Path) -> None:
    args = [*SMALL, "--epochs", "2", "--limit-train-batches", "3", "--batch-size", "32"]
    # one process: each global batch split into the 2 replicas' halves (what their BatchNorms see)
    run([sys.executable, TRAIN, *args, "--grad-accum", "2", "--output", str(tmp_path / "single")])
    port = free_port()
    cmd = torchrun(2, [*args, "--parallel", "group", "--output", str(tmp_path / "mesh")], nnodes=2, rdzv_port=port)
    with running(cmd, tmp_path / "node0.log") as a, running(cmd, tmp_path / "node1.log") as b:
        assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0, (
            (tmp_path / "node0.log").read_text()[-3000:] + (tmp_path / "node1.log").read_text()[-3000:])
    record = json.loads((tmp_path / "mesh" / "config.json").read_text())
    assert record["mesh"] == {"data": 2, "group": 2} and record["world_size"] == 4
    for one, mesh in zip(metrics(tmp_path / "single"), metrics(tmp_path / "mesh"), strict=True):
        assert mesh["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5, abs=1e-6)
        assert mesh["train_samples"] == one["train_samples"] == 96
        assert mesh["test_samples"] == one["test_samples"]
    # parameters within fp32 rounding; BatchNorm statistics follow replica 0 (as under DDP), which saw half of
    # each batch once, while the single process updated them once per half: evaluation differs by that
    single, mesh = final_weights(tmp_path / "single"), final_weights(tmp_path / "mesh")
    params = [k for k in single if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert max(float((mesh[k] - single[k]).abs().max()) for k in params) < 1e-5
    log = (tmp_path / "node0.log").read_text() + (tmp_path / "node1.log").read_text()
    assert "gradient all-reduce of group rank 1: ranks [1, 3]" in log
    # the sharded checkpoint converts offline to the folder from_pretrained reads
    import tglc_zoo
    from tglc_zoo.training.publish import publish_run

    folder = publish_run(tmp_path / "mesh", tmp_path / "published")
    loaded = tglc_zoo.from_pretrained(folder).state_dict()
    assert _same(loaded, mesh) == []
    # and one process continues the sharded run, reading its slices whole
    out = run([sys.executable, TRAIN, "--resume", str(tmp_path / "mesh"), "--epochs", "3", "--no-progress"])
    assert "in a single process" in out.stdout and [r["epoch"] for r in metrics(tmp_path / "mesh")] == [1, 2, 3]


def test_a_killed_rank_restarts_and_ends_with_the_same_weights(fmnist_dir: Path, tmp_path: Path) -> None:
    # real Fashion-MNIST images with random crops and flips, and head dropout: every generator must come back
    args = ["--model", "wrn16_2_gc2l_n2", "--dataset", "fmnist", "--data-dir", str(fmnist_dir), "--lr", "0.01",
            "--drop-rate", "0.2", "--no-progress", "--no-tensorboard", "--limit-val-batches", "2", "--epochs", "3",
            "--limit-train-batches", "6", "--batch-size", "64", "--checkpoint-every", "2", "--parallel", "group"]
    run(torchrun(2, [*args, "--output", str(tmp_path / "straight")]))
    rng = random.Random()
    rank, step = rng.randrange(2), rng.choice([2, 4, 6, 8, 10, 12])
    why = f"killed rank {rank} once the checkpoint of step {step} was written"
    out = tmp_path / "killed"
    cmd = torchrun(2, [*args, "--output", str(out), "--resume", "auto"], rdzv_port=free_port(), max_restarts=2)
    with running(cmd, tmp_path / "killed.log") as proc:
        wait_until(f"the checkpoint of step {step} ({why})", lambda: latest_step(out) >= step, timeout=240)
        victim = workers(proc.pid)[rank]
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=300) == 0, why + "\n" + (tmp_path / "killed.log").read_text()[-4000:]
    log = (tmp_path / "killed.log").read_text()
    assert "resumed after epoch" in log, why
    # rank 0 writes the folder and holds its lock: killed, it leaves the lock to be taken over; when rank 1 dies,
    # torchrun stops rank 0 with SIGTERM and rank 0 releases the lock on its way out
    assert ("took over the lock of a trainer that stopped without releasing it" in log) == (rank == 0), why
    assert metrics(out)[-1]["epoch"] == 3
    assert _same(final_weights(out), final_weights(tmp_path / "straight")) == [], why
    print(f"{why}: restarted, resumed, bit-identical final weights")


def test_a_stalled_rank_makes_the_others_fail_within_the_timeout(tmp_path: Path) -> None:
    timeout = 6
    args = [*SMALL, "--epochs", "20", "--batch-size", "128", "--checkpoint-every", "1", "--parallel", "group",
            "--dist-timeout", str(timeout), "--output", str(tmp_path / "run")]
    with running(torchrun(2, args), tmp_path / "run.log") as proc:
        wait_until("the first checkpoint", lambda: latest_step(tmp_path / "run") >= 1, timeout=240)
        ranks = workers(proc.pid)
        stalled = random.Random().randrange(2)
        os.kill(ranks[stalled], signal.SIGSTOP)
        t0 = time.monotonic()
        survivor = ranks[1 - stalled]
        wait_until("the other rank to fail", lambda: not alive(survivor), timeout=timeout + 60, poll=0.1)
        elapsed = time.monotonic() - t0
        os.kill(ranks[stalled], signal.SIGKILL)
        proc.wait(timeout=120)
    log = (tmp_path / "run.log").read_text()
    assert elapsed < timeout + 10, f"rank {1 - stalled} failed {elapsed:.1f} s after rank {stalled} stalled"
    print(f"rank {stalled} stalled (SIGSTOP); rank {1 - stalled} failed {elapsed:.1f} s later "
          f"(--dist-timeout {timeout})")
    assert "tglc-train: error:" in log and "stalled past the process group's timeout" in log, log[-3000:]
    named = ("group-parallel all-gather at", "group-parallel reduce-scatter at", "broadcast of the input batch",
             "the all-reduce after each optimizer step", "the checkpoint at global step",
             "data-parallel gradient all-reduce")
    assert any(n in log for n in named), log[-3000:]


def test_a_single_process_checkpoint_resumes_group_parallel(tmp_path: Path) -> None:
    args = [*SMALL, "--limit-train-batches", "3", "--batch-size", "32"]
    single, moved = tmp_path / "single", tmp_path / "moved"
    run([sys.executable, TRAIN, *args, "--epochs", "1", "--output", str(moved)])
    run([sys.executable, TRAIN, *args, "--epochs", "2", "--output", str(single)])
    run(torchrun(2, ["--resume", str(moved), "--epochs", "2", "--parallel", "group", "--no-progress"]))
    rows, ref = metrics(moved), metrics(single)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] == pytest.approx(ref[1]["train_loss"], rel=1e-5)
    assert (moved / "checkpoints" / "last.pt").is_file() and (moved / "checkpoints" / "step-00000006").is_dir()
    got, want = final_weights(moved), final_weights(single)
    assert set(got) == set(want)
    assert max(float((got[k] - want[k]).abs().max()) for k in want) < 1e-4
