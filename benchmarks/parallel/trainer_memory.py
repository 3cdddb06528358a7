"""Memory per rank of ``tglc-train --parallel group``, measured: WRN-28-{10,40} at N = 2, 4, and Table 2's model.

Every run is the real command line a user types (``scripts/train.py`` under ``torchrun``, gloo on 127.0.0.1,
real Fashion-MNIST images), wrapped in :mod:`.peak_rss` so each process reports its peak resident memory:

* **single process** — the same GC-2L-N model trained by one process (what one device would hold);
* **group parallel** — N processes, one channel group each (this checkout's trainer);
* **before** (``--before-repo``) — the same command with another checkout's trainer, for a comparison;
* **Table 2** — ``wrn28_80_gc2l_n4`` on 4 processes on Fashion-MNIST zero-padded to 32×32 (``fmnist32``):
  a few steps with a sharded checkpoint, then a resume from it for a few more.

Each run trains one short epoch and writes its epoch-end checkpoint. Recorded per run: every rank's peak RSS,
the seconds per training step (CPU: it shows that it runs, not how fast it would on GPUs), and the bytes of
each rank's checkpoint file. Results go to ``<out>/trainer_memory.json`` (the report turns them into
``docs/parallel.md``'s tables).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tglc_zoo.distributed.launch import free_port

from ..tables import write_json

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["Run", "run_trainer", "memory_grid", "table2", "import_baseline"]


@dataclass
class Run:
    """One measured trainer run."""

    label: str                  # "single", "group", "before", "table2", "table2-resume"
    model: str
    groups: int
    world: int
    dataset: str
    batch: int
    steps: int
    peak_rss_mib: list[float] = field(default_factory=list)   # by rank
    step_s: float = 0.0
    checkpoint_bytes: list[int] = field(default_factory=list)  # by rank (sharded), or [the one file]
    wall_s: float = 0.0
    command: str = ""
    ok: bool = True
    error: str = ""


def _args(model: str, groups: int, dataset: str, batch: int, steps: int, out: Path, epochs: int = 1) -> list[str]:
    return ["--model", model, "--conv-type", "gc2l", "--groups", str(groups), "--dataset", dataset,
            "--batch-size", str(batch), "--epochs", str(epochs), "--limit-train-batches", str(steps),
            "--limit-val-batches", "1", "--lr", "0.01", "--no-progress", "--no-tensorboard", "--output", str(out)]


def _checkpoint_bytes(run_dir: Path) -> list[int]:
    ckpts = run_dir / "checkpoints"
    latest = ckpts / "latest.json"
    if latest.is_file():
        entry = ckpts / json.loads(latest.read_text())["entry"]
        if entry.is_dir():
            files = sorted(entry.glob("__*_0.distcp"), key=lambda p: int(p.name.split("_")[2]))
            return [p.stat().st_size for p in files]
        return [entry.stat().st_size]
    last = ckpts / "last.pt"
    return [last.stat().st_size] if last.is_file() else []


def run_trainer(label: str, model: str, groups: int, world: int, dataset: str, batch: int, steps: int,
                out: Path, *, repo: Path = ROOT, extra: list[str] | None = None, epochs: int = 1,
                timeout: float = 3600, fresh: bool = True) -> Run:
    """Run the trainer of ``repo`` (``world`` > 1: under torchrun, group parallel) and measure it."""
    if fresh and out.exists():
        shutil.rmtree(out)
    rss_file = Path(tempfile.mkstemp(prefix="peak-rss-", suffix=".jsonl")[1])
    train = repo / "scripts" / "train.py"
    args = _args(model, groups, dataset, batch, steps, out, epochs) + (extra or [])
    wrapper = str(Path(__file__).with_name("peak_rss.py"))  # a script: it runs any checkout's trainer alike
    if world == 1:
        cmd = [sys.executable, wrapper, str(train), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world), "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), wrapper, str(train), *args, "--group-parallel"]
    # the measured checkout's package first (an installed tglc_zoo may be another checkout)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TGLC_PEAK_RSS_FILE": str(rss_file), "PYTHONPATH": str(repo),
           "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    run = Run(label, model, groups, world, dataset, batch, steps, wall_s=round(time.perf_counter() - t0, 1),
              command=" ".join(["torchrun" if world > 1 else "python", *cmd[cmd.index(str(train)):]]))
    rows = [json.loads(line) for line in rss_file.read_text().splitlines() if line.strip()]
    rss_file.unlink()
    run.peak_rss_mib = [r["peak_rss_mib"] for r in sorted(rows, key=lambda r: r["rank"])]
    if proc.returncode != 0:
        run.ok, run.error = False, (proc.stderr or proc.stdout)[-2000:]
        return run
    row = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    run.step_s = round(float(row["train_time_s"]) / steps, 2)
    run.checkpoint_bytes = _checkpoint_bytes(out)
    print(f"[memory] {label} {model} N={groups} world={world}: peak RSS {run.peak_rss_mib} MiB, "
          f"{run.step_s} s/step, {run.wall_s} s", flush=True)
    return run


def import_baseline() -> float:
    """Peak RSS (MiB) of a process that only imports the trainer: the fixed cost in every number."""
    script = Path(tempfile.mkstemp(suffix=".py")[1])
    script.write_text("import tglc_zoo.training  # noqa: F401\n")
    rss_file = Path(tempfile.mkstemp(suffix=".jsonl")[1])
    env = {**os.environ, "TGLC_PEAK_RSS_FILE": str(rss_file), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(Path(__file__).with_name("peak_rss.py")), str(script)], cwd=ROOT, env=env,
                   check=True, timeout=300)
    value = float(json.loads(rss_file.read_text().splitlines()[0])["peak_rss_mib"])
    script.unlink()
    rss_file.unlink()
    return value


def memory_grid(models: list[str], world_sizes: list[int], batch: int, steps: int, work: Path,
                before_repo: Path | None = None) -> list[Run]:
    runs: list[Run] = []
    for model in models:
        for n in world_sizes:
            runs.append(run_trainer("single", model, n, 1, "fmnist", batch, steps, work / f"{model}-n{n}-single"))
            runs.append(run_trainer("group", model, n, n, "fmnist", batch, steps, work / f"{model}-n{n}-group"))
            if before_repo is not None:
                runs.append(run_trainer("before", model, n, n, "fmnist", batch, steps, work / f"{model}-n{n}-before",
                                        repo=before_repo))
    return runs


def table2(batch: int, steps: int, work: Path) -> list[Run]:
    """Table 2's model group-parallel on 4 processes: a run with a sharded checkpoint, then a resume from it."""
    out = work / "wrn28_80-n4"
    first = run_trainer("table2", "wrn28_80", 4, 4, "fmnist32", batch, steps, out)
    if not first.ok:
        return [first]
    resumed = run_trainer("table2-resume", "wrn28_80", 4, 4, "fmnist32", batch, steps, out, epochs=2,
                          extra=["--resume", "auto"], fresh=False)
    return [first, resumed]


def commit_of(repo: Path | None) -> str | None:
    """The short commit a checkout is at (the "before" trainer's identity in the report)."""
    if repo is None:
        return None
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def save(runs: list[Run], baseline_mib: float, path: Path, before_repo: Path | None = None) -> None:
    from tglc_zoo.util.hardware import hardware_description

    write_json(path, {"import_baseline_mib": baseline_mib, "hardware": hardware_description(torch.device("cpu")),
                      "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                      "load_avg": os.getloadavg(), "before_commit": commit_of(before_repo),
                      "runs": [asdict(r) for r in runs]})
