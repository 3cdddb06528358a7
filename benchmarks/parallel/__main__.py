#!/usr/bin/env python3
"""Group parallelism, measured and projected; writes ``docs/parallel.md`` (the CLI; each part is its own module).

* shards (:mod:`.shards`) — one group-parallel shard per spawned gloo process: parameters, memory and bytes
  sent per rank, counted by the collectives, beside the cost model's count;
* projection (:mod:`.projection`, :mod:`.cost_model`) — WRN-28-{10,40,80} at N = 2…64: group vs data
  parallelism vs the paper's layer-wise SC baseline;
* ``--memory`` (:mod:`.trainer_memory`) — peak RSS per rank of ``tglc-train --parallel group`` against one
  process, and Table 2's WRN-28-80 on 4 processes with a sharded checkpoint and a resume (tens of minutes);
* ``--grad-sync`` (:mod:`.grad_sync_bench`) — the gradient all-reduce across replicas, three ways;
* the report (:mod:`.report`) — docs/parallel.md from everything stored in ``--out``.

Examples:
    python -m benchmarks.parallel                        # shards + projection + report (minutes on 2 CPU cores)
    python -m benchmarks.parallel --skip-measure         # projection + report (seconds)
    python -m benchmarks.parallel --memory --before-repo /tmp/before   # the trainer's memory, against a checkout
    python -m benchmarks.parallel --report-only          # docs/parallel.md from the stored results
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

from tglc_zoo.distributed.launch import launch
from tglc_zoo.util.atomic import atomic_write

from ..tables import write_csv, write_json
from . import trainer_memory
from .cost_model import Device, device_dict
from .grad_sync_bench import measure_variants
from .projection import plot, projection
from .report import load_results, render
from .shards import activation_per_image, measure

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="wrn28_10", help="CIFAR WRN measured in part 1 (wrn16_2, wrn28_10, ...)")
    p.add_argument("--conv-types", nargs="+", default=["gc2l", "gc"], choices=["gc2l", "gc"])
    p.add_argument("--world-sizes", nargs="+", type=int, default=[2, 4])
    p.add_argument("--batch", type=int, default=8, help="batch of the measured steps (identical on every rank)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900, help="seconds per measured launch")
    p.add_argument("--skip-measure", action="store_true", help="projection only (reuses <out>/measured.json if any)")
    p.add_argument("--report-only", action="store_true", help="write docs/parallel.md from <out>'s stored results")
    p.add_argument("--memory", action="store_true", help="also measure the trainer's peak RSS per rank (long)")
    p.add_argument("--memory-models", nargs="+", default=["wrn28_10", "wrn28_40"])
    p.add_argument("--memory-batch", type=int, default=4)
    p.add_argument("--before-repo", type=Path, default=None,
                   help="another checkout whose trainer to measure beside this one (e.g. a git worktree)")
    p.add_argument("--no-table2", action="store_true", help="with --memory: skip WRN-28-80 on 4 processes")
    p.add_argument("--grad-sync", action="store_true", help="also measure the gradient all-reduce variants")
    p.add_argument("--grad-sync-model", default="wrn28_10")
    p.add_argument("--project-widths", nargs="+", type=int, default=[10, 40, 80])
    p.add_argument("--project-n", nargs="+", type=int, default=[2, 4, 8, 16, 32, 64])
    p.add_argument("--project-batch", type=int, default=128, help="global batch of the projection (paper: 128)")
    d = Device()
    p.add_argument("--device-name", default=d.name)
    p.add_argument("--peak-flops", type=float, default=d.peak_flops, help="device peak FLOP/s (fp32)")
    p.add_argument("--efficiency", type=float, default=d.efficiency, help="sustained fraction of the peak")
    p.add_argument("--bandwidth", type=float, default=d.bandwidth, help="link bytes/s per direction per device")
    p.add_argument("--latency", type=float, default=d.latency, help="seconds per message")
    p.add_argument("--memory-gib", type=float, default=d.memory / 2**30)
    p.add_argument("--out", default=str(ROOT / "docs" / "parallel"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "parallel.md"))
    p.add_argument("--work", type=Path, default=Path("/tmp/tglc-bench-parallel"), help="scratch run folders")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if not args.report_only:
        if not args.skip_measure:
            measured = measure(args)
            write_json(out / "measured.json", dict(machine=platform.platform(), torch=torch.__version__,
                                                    rows=measured))
            write_csv(out / "measured.csv", measured)
        act = activation_per_image()
        device, proj = projection(args, act)
        write_json(out / "projection.json", dict(device=device_dict(device), activation_bytes_per_image=act,
                                                  batch=args.project_batch, rows=proj))
        write_csv(out / "projection.csv", proj)
        plot(proj, device, out / "projection.png")
        if args.memory:
            baseline = trainer_memory.import_baseline()
            runs = trainer_memory.memory_grid(args.memory_models, args.world_sizes, args.memory_batch, 2, args.work,
                                              args.before_repo)
            if not args.no_table2:
                runs += trainer_memory.table2(args.memory_batch, 2, args.work)
            trainer_memory.save(runs, baseline, out / "trainer_memory.json", args.before_repo)
        if args.grad_sync:
            steps = 5
            results = launch(measure_variants, 4, (args.grad_sync_model, 2, args.batch, steps),
                             timeout=args.timeout, pg_timeout=args.timeout)
            write_json(out / "grad_sync.json", dict(model=args.grad_sync_model, batch=args.batch, steps=steps,
                                                     load_avg=os.getloadavg(), ranks=[r.value for r in results]))
    res = load_results(out)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    atomic_write(Path(args.doc), render(res, out, Path(args.doc), machine))
    rows = (res["measured"] or {}).get("rows", [])
    bad = [r for r in rows if r["sent_bytes_per_step"] != r["predicted_bytes_per_step"]]
    if bad:
        print(f"[bench_parallel] counted bytes differ from the cost model in {len(bad)} rows", file=sys.stderr)
        return 1
    print(f"[bench_parallel] wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
