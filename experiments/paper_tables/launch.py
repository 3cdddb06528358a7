"""Shared launcher for the paper-table reproduction scripts.

Each table script builds a list of :class:`PlannedRun` and hands it to :func:`main`, which either
prints and checks every command (``--dry-run``: each command is parsed by the real ``tglc-train``
parser, turned into a validated ``TrainConfig``, and its model name is checked against the registry)
or runs them, one per free GPU slot (``--gpus 0,1,2,3``), each with ``torchrun --nproc-per-node`` as
many processes as the run needs.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TRAIN = "scripts/train.py"


@dataclass(frozen=True)
class PlannedRun:
    name: str
    train_args: tuple[str, ...]
    nproc: int = 1
    note: str = ""

    def command(self, python: str = "python") -> list[str]:
        if self.nproc > 1:
            return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.nproc}", TRAIN,
                    *self.train_args]
        return [python, TRAIN, *self.train_args]


def common_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dry-run", action="store_true", help="print and check every command, run nothing")
    p.add_argument("--runs-dir", default="runs/paper", help="where run folders go")
    p.add_argument("--publish-dir", default="published/paper", help="where published checkpoints go")
    p.add_argument("--gpus", default="0", help="comma-separated GPU ids; runs are spread over them")
    p.add_argument("--only", default="", help="only runs whose name contains this text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra", default="", help="extra tglc-train arguments for every run (quoted)")
    return p


def check_run(run: PlannedRun) -> list[str]:
    """Parse one planned command exactly as tglc-train would; return the problems found."""
    import tglc_zoo
    from tglc_zoo.distributed import PARALLEL_MODES
    from tglc_zoo.training.cli import build_parser, config_from_args

    with_dist = True
    try:
        import tglc_zoo.distributed
    except ImportError:
        with_dist = False
    parser = build_parser()
    problems: list[str] = []
    try:
        args = parser.parse_args(list(run.train_args))
    except SystemExit:
        return [f"{run.name}: tglc-train cannot parse {shlex.join(run.train_args)}"]
    if args.parallel not in PARALLEL_MODES:
        print(f"# NOTE {run.name}: parallel mode {args.parallel!r} is not registered in this installation "
              f"(tglc_zoo.distributed {'present' if with_dist else 'missing'}); the command cannot run here yet")
        args.parallel = "data"
    try:
        config_from_args(args, parser)
    except (SystemExit, ValueError) as exc:
        problems.append(f"{run.name}: invalid configuration: {exc}")
    if not tglc_zoo.is_model(args.model):
        problems.append(f"{run.name}: unknown model {args.model!r}")
    return problems


def main(title: str, build: Callable[[argparse.Namespace], list[PlannedRun]], parser: argparse.ArgumentParser,
         argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    runs = [r for r in build(args) if args.only in r.name]
    extra = shlex.split(args.extra)
    runs = [PlannedRun(r.name, (*r.train_args, *extra), r.nproc, r.note) for r in runs]
    gpus = [g for g in args.gpus.split(",") if g.strip()]
    print(f"# {title}: {len(runs)} runs" + (" (dry run)" if args.dry_run else f" on GPUs {gpus}"))
    problems: list[str] = []
    for r in runs:
        print(("# " + r.note + "\n" if r.note else "") + shlex.join(r.command()))
        problems += check_run(r)
    if problems:
        print("\n".join(["# PROBLEMS:", *problems]), file=sys.stderr)
        return 1
    print(f"# all {len(runs)} commands parse")
    if args.dry_run:
        return 0
    return _run_all(runs, gpus)


def _run_all(runs: list[PlannedRun], gpus: list[str]) -> int:
    """Run commands, each on ``nproc`` GPUs from the pool; several at once when the pool allows."""
    pending, running, failed = list(runs), [], []
    free = list(gpus)
    while pending or running:
        while pending and len(free) >= pending[0].nproc:
            run = pending.pop(0)
            mine, free = free[:run.nproc], free[run.nproc:]
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(mine)}
            log = REPO / "runs" / "logs" / f"{run.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"[launch] {run.name} on GPUs {mine} -> {log}", flush=True)
            proc = subprocess.Popen(run.command(sys.executable), cwd=REPO, env=env, stdout=open(log, "w"),
                                    stderr=subprocess.STDOUT)
            running.append((proc, run, mine))
        if pending and not running:
            print(f"[launch] {pending[0].name} needs {pending[0].nproc} GPUs, only {len(gpus)} given", file=sys.stderr)
            return 1
        time.sleep(5)
        for item in list(running):
            proc, run, mine = item
            if proc.poll() is not None:
                running.remove(item)
                free += mine
                print(f"[launch] {run.name} finished with exit code {proc.returncode}", flush=True)
                if proc.returncode:
                    failed.append(run.name)
    if failed:
        print(f"[launch] failed: {failed}", file=sys.stderr)
    return 1 if failed else 0
