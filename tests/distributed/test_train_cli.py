"""``scripts/train.py --group-parallel`` under torchrun trains exactly like the single-process run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tglc_zoo.distributed.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--model", "wrn16_2_gc2l_n2", "--dataset", "digits", "--epochs", "1", "--limit-train-batches", "3",
        "--limit-val-batches", "2", "--batch-size", "32", "--lr", "0.01", "--no-progress", "--no-tensorboard"]

pytestmark = pytest.mark.slow


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_group_parallel_training_matches_single_process(tmp_path):
    train = str(ROOT / "scripts" / "train.py")
    _run([sys.executable, train, *ARGS, "--output", str(tmp_path / "single")])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(free_port()), train, *ARGS, "--group-parallel", "--output", str(tmp_path / "group")])
    single, group = (json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0])
                     for d in ("single", "group"))
    assert json.loads((tmp_path / "group" / "config.json").read_text())["config"]["parallel"] == "group"
    for key in ("train_loss", "test_loss"):
        assert group[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
    assert group["test_acc"] == single["test_acc"]
