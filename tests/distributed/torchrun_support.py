"""Launching ``scripts/train.py`` under real ``torchrun`` processes, finding its workers, and always reaping them."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from tglc_zoo.distributed.launch import free_port
from tglc_zoo.distributed.sharded_checkpoint import read_full_tensors
from tglc_zoo.training.checkpoint_dir import latest_entry, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "scripts" / "train.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "GLOO_SOCKET_IFNAME": "lo"}


def torchrun(nproc: int, args: Sequence[str], *, nnodes: int = 1, rdzv_port: int | None = None,
             max_restarts: int = 0, rdzv_id: str = "tglc-test") -> list[str]:
    """A torchrun command: static rendezvous on 127.0.0.1, or c10d (``rdzv_port``) for several launchers/restarts."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
           "--max-restarts", str(max_restarts)]
    if rdzv_port is None:
        cmd += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    else:
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{rdzv_port}", "--rdzv-id", rdzv_id]
    return [*cmd, TRAIN, *args]


@contextlib.contextmanager
def running(cmd: Sequence[str], log: Path) -> Iterator[subprocess.Popen[Any]]:
    """Start ``cmd`` in its own session (stdout+stderr to ``log``); on exit kill its whole process group."""
    with open(log, "w") as out:
        proc = subprocess.Popen(list(cmd), cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


def run(cmd: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run to completion (bounded); raises with the output when it fails."""
    proc = subprocess.run(list(cmd), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def workers(launcher_pid: int) -> dict[int, int]:
    """Global rank -> pid of the training processes a torchrun agent started (read from /proc)."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{launcher_pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                rank = next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)
                if rank is not None:
                    out[rank] = int(pid)
    return out


def alive(pid: int) -> bool:
    """Running or stopped (not exited, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, poll: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def latest_step(run_dir: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"])
    return -1


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The single-process state dict of a run's latest checkpoint (either layout)."""
    entry = latest_entry(run_dir)
    assert entry is not None, f"{run_dir} has no checkpoint"
    ckpt = load_checkpoint(entry)
    return read_full_tensors(entry, "model.") if "sharded" in ckpt else dict(ckpt["model"])


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
