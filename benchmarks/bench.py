#!/usr/bin/env python3
"""Benchmark the conv types: layer grid (SC/GC/GC-2L impls/Shuffle/FLGC) and whole models.

Examples:
    python -m benchmarks.bench --quick                       # a small subset, minutes on a CPU
    python -m benchmarks.bench --grids wrn28_10 --no-models  # the full WRN-28-10 layer grid (the goals)
    python -m benchmarks.bench --device cuda --dtypes fp32 bf16 --out docs/bench/gpu
Every row shows t/GC and t/SC next to FLOPs/GC and FLOPs/SC (FLOPs counted analytically,
R0 and R̄0ᵀ included). Writes <out>/<name>.{csv,json,png} and <out>/<name>_models.csv.
Timings are minima over blocks and interleaved rounds (torch.utils.benchmark.blocked_autorange).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .profiling import goals as goals_mod
from .profiling.impl_table import MAX_FOREIGN_LOAD, best_impls, merge_into_table, quiet_rows
from .profiling.layer_bench import CANDIDATES, LAYOUTS, MODES, Setting, bench_point, rederive_auto
from .profiling.machine import describe, load_average
from .profiling.model_bench import MODEL_CONV_TYPES, add_model_ratios, bench_model
from .profiling.model_figure import plot_speedups
from .profiling.report import LAYER_COLUMNS, MODEL_COLUMNS, plot, result_document
from .profiling.shapes import GRIDS, grid_shapes
from .tables import text_table, write_csv, write_json

QUICK_SHAPES = {"160->160 3x3 @32x32", "320->640 3x3/s2 @16x16", "640->640 3x3 @8x8", "160->320 1x1/s2 @32x32"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                   help="fp32, and/or bf16 autocast")
    p.add_argument("--grids", nargs="+", default=["wrn28_10", "wrn34_2", "mobilenetv2"], choices=sorted(GRIDS))
    p.add_argument("--groups", nargs="+", type=int, default=[2, 4, 8, 16])
    p.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--batch", type=int, help="layer batch (default 32 on CPU, 128 on CUDA)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds per point (min is kept)")
    p.add_argument("--min-run-time", type=float, help="seconds per blocked_autorange (default 0.2 CPU, 0.1 CUDA)")
    p.add_argument("--models", nargs="*", default=["wrn28_10", "wrn16_4", "mobilenetv2"],
                   help="architectures for the whole-model benchmark (none: skip)")
    p.add_argument("--no-models", action="store_true")
    p.add_argument("--compile-models", action="store_true", help="also time every model's training under torch.compile")
    p.add_argument("--no-layers", action="store_true")
    p.add_argument("--model-groups", nargs="+", type=int, default=[4, 8])
    p.add_argument("--model-convs", nargs="+", default=list(MODEL_CONV_TYPES), choices=MODEL_CONV_TYPES)
    p.add_argument("--train-batch", type=int, help="model training batch (default 8 on CPU, 128 on CUDA)")
    p.add_argument("--model-iters", type=int, help="timed steps per model (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--quick", action="store_true",
                   help="subset: 4 WRN-28-10 shapes, N in {4, 16}, channels_last, WRN-16-4 only, small batches")
    p.add_argument("--out", type=Path, default=Path("docs/bench/cpu"), help="output folder")
    p.add_argument("--name", default=None, help="file stem (default: bench_<device>[_quick])")
    p.add_argument("--write-impl-table", action="store_true",
                   help="merge the fastest GC-2L impl per measured shape into tglc_zoo/layers/gc2l_impl_table.json")
    p.add_argument("--autotune", action="store_true",
                   help="also time a GC-2L layer pinned by tglc_zoo.layers.autotune per point (cold cache): gc2l:tuned")
    p.add_argument("--max-foreign-load", type=float, default=MAX_FOREIGN_LOAD,
                   help="with --write-impl-table: refuse points timed while other processes used more cores")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds: start no new layer point / model after this; results so far are still written")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: perf_counter; cpu: process CPU time (use with --threads 1 on a shared CPU)")
    return p.parse_args(argv)


def _defaults(args: argparse.Namespace, device: torch.device) -> None:
    cuda = device.type == "cuda"
    if args.quick:
        args.grids, args.groups, args.layouts = ["wrn28_10"], [4, 16], ["channels_last"]
        args.models = ["wrn16_4"] if not args.no_models else []
        args.batch = args.batch or (32 if cuda else 8)
        args.rounds = 1
    args.batch = args.batch or (128 if cuda else 32)
    args.min_run_time = args.min_run_time or (0.1 if cuda else 0.2)
    args.train_batch = args.train_batch or (128 if cuda else 8)
    args.model_iters = args.model_iters or (20 if cuda else 3)
    if args.no_models:
        args.models = []
    args.name = args.name or f"bench_{device.type}{'_quick' if args.quick else ''}"


class Budget:
    """Wall-clock budget for the whole run; ``over()`` turns true once it is spent."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.start, self.hit = seconds, time.perf_counter(), False

    def over(self) -> bool:
        if self.seconds is not None and time.perf_counter() - self.start > self.seconds:
            if not self.hit:
                print(f"time budget of {self.seconds:.0f}s spent: skipping the remaining points", flush=True)
            self.hit = True
        return self.hit


def run_layers(args: argparse.Namespace, device: torch.device, budget: Budget) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dtype in args.dtypes:
        setting = Setting(device, dtype, args.batch, args.rounds, args.min_run_time,
                          args.clock if device.type != "cuda" else "wall", tune=args.autotune)
        for grid in args.grids:
            shapes = [s for s in grid_shapes(grid) if not args.quick or s.label() in QUICK_SHAPES]
            for shape in shapes:
                for groups in args.groups:
                    if not shape.valid_groups(groups):
                        continue
                    for layout in args.layouts:
                        for mode in args.modes:
                            if budget.over():
                                return rows
                            t0 = time.perf_counter()
                            point = list(bench_point(shape, groups, layout, mode, setting, args.candidates))
                            rows += point
                            best = {r["conv"]: r["time_ms"] for r in point}
                            gc2l = min((v, k) for k, v in best.items() if k.startswith("gc2l:") and k != "gc2l:tuned")
                            print(f"[{grid}] {shape.label():28s} N={groups:<2d} {layout:13s} {mode:6s} {dtype}: "
                                  f"sc {best.get('sc', float('nan')):8.2f} gc {best.get('gc', float('nan')):8.2f} "
                                  f"best gc2l {gc2l[1]} {gc2l[0]:8.2f} ms  ({time.perf_counter() - t0:.0f}s, "
                                  f"load {load_average()})", flush=True)
    return rows


def run_models(args: argparse.Namespace, device: torch.device, budget: Budget) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dtype in args.dtypes:
        for arch in args.models:
            for conv in args.model_convs:
                for groups in ([1] if conv == "sc" else args.model_groups):
                    if budget.over():
                        return rows
                    t0 = time.perf_counter()
                    new = list(bench_model(arch, conv, groups, device, dtype, args.train_batch, 1, args.model_iters,
                                           clock=args.clock))
                    if args.compile_models:
                        new += bench_model(arch, conv, groups, device, dtype, args.train_batch, 1, args.model_iters,
                                           clock=args.clock, compiled=True)
                    rows += new
                    print(f"[model] {arch} {conv} N={groups} {dtype}: " + ", ".join(
                        f"{r['conv']}{' compiled' if r['compiled'] else ''} {r['task']} {r['time_ms']:.1f} ms "
                        f"({r['img_per_s']:.1f} img/s)" for r in new)
                        + f"  ({time.perf_counter() - t0:.0f}s, load {load_average()})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    _defaults(args, device)
    machine = describe(device)
    machine["clock"] = args.clock if device.type != "cuda" else "wall"
    print(f"machine: {json.dumps(machine)}", flush=True)
    t_start = time.perf_counter()
    budget = Budget(args.time_budget)
    layer_rows = [] if args.no_layers else run_layers(args, device, budget)
    if args.write_impl_table and layer_rows:  # first, so that the auto rows below use the new table
        best, refused = quiet_rows(best_impls(layer_rows), args.max_foreign_load)
        for r in refused:
            print(f"impl table: refused {r['in_channels']}->{r['out_channels']} k{r['kernel_size']} s{r['stride']} "
                  f"N={r['groups']} hw={r['hw']}: other processes used {r['foreign_load']} cores while it was "
                  f"timed (limit {args.max_foreign_load})")
        n = merge_into_table(best, source=f"{device.type}: {machine.get('gpu_name') or machine['cpu_model']}, "
                                          f"torch {machine['torch_version']}, {time.strftime('%Y-%m-%d')}")
        print(f"impl table: merged {len(best)} measured points ({len(refused)} refused), {n} rows in total")
    layer_rows = rederive_auto(layer_rows)
    model_rows = run_models(args, device, budget)
    add_model_ratios(model_rows)
    machine["load_average_end"] = load_average()
    machine["wall_s"] = round(time.perf_counter() - t_start, 1)
    machine["truncated_by_time_budget"] = budget.hit
    goals = {"layers": {d: goals_mod.layer_goals(layer_rows, dtype=d) for d in args.dtypes},
             "models": {d: goals_mod.model_goals(model_rows, dtype=d) for d in args.dtypes}}

    if layer_rows:
        print(text_table(sorted(layer_rows, key=lambda r: (r["dtype"], r["grid"], r["shape"], r["groups"],
                                                             r["layout"], r["mode"], r["conv"])), LAYER_COLUMNS))
    if model_rows:
        print(text_table(model_rows, MODEL_COLUMNS))
    print("goals:", json.dumps(goals, indent=1, default=str))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / args.name
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["command"] = " ".join(["python", "-m", "benchmarks.bench", *(argv if argv is not None else sys.argv[1:])])
    if layer_rows:
        write_csv(stem.with_suffix(".csv"), layer_rows)
    if model_rows:
        write_csv(stem.parent / f"{stem.name}_models.csv", model_rows)
    write_json(stem.with_suffix(".json"), result_document(machine, config, layer_rows, model_rows, goals))
    plot(stem.with_suffix(".png"), [r for r in layer_rows if r["dtype"] == args.dtypes[0]],
         [r for r in model_rows if r["dtype"] == args.dtypes[0]],
         f"{machine.get('gpu_name') or machine['cpu_model']} · torch {machine['torch_version']} · "
         f"load {machine['load_average_start']} → {machine['load_average_end']}")
    for arch in dict.fromkeys(r["arch"] for r in model_rows):
        figure = plot_speedups(model_rows, arch, stem.parent / f"{stem.name}_{arch}_speedups.png", args.dtypes[0])
        if figure is not None:
            print(f"wrote {figure}")
    print(f"wrote {stem}.{{csv,json,png}}" + (f" and {stem.name}_models.csv" if model_rows else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
