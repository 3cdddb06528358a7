"""Data parallel: 2 gloo processes under torchrun match one process with the same global batch."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tglc_zoo.training import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_single_process(tmp_path: Path) -> None:
    common = ["--model", "wrn16_2_gc2l_n2", "--dataset", "digits", "--batch-size", "32", "--epochs", "2",
              "--limit-train-batches", "4", "--lr-milestones", "1", "--no-progress", "--no-tensorboard", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO)}
    # one process, each batch of 32 split into 2 micro-batches of 16 (what each rank sees)
    single = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *common, "--grad-accum", "2",
                             "--output", str(tmp_path / "single")], env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                          "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
                          str(REPO / "scripts" / "train.py"), *common, "--output", str(tmp_path / "ddp")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert b["world_size"] == 2 and a["world_size"] == 1
    params = [k for k in a["model"] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    for k in params:  # BN running statistics follow rank 0 under DDP, so only parameters are compared
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-4, atol=1e-5, msg=k)
    for ra, rb in zip(a["history"], b["history"]):
        assert ra["train_samples"] == rb["train_samples"] == 128
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
        assert rb["test_samples"] == 360  # sharded evaluation covers the test set exactly once
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
