#!/usr/bin/env python3
"""Print markdown tables of a python -m benchmarks.bench JSON result (pasted into docs/benchmarks.md).

    python -m benchmarks.bench_md docs/bench/cpu/table_run_wrn28_10.json [--models docs/bench/cpu/models_wrn28_10.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .profiling import goals
from .profiling.impl_table import best_impls, merge_into_table
from .profiling.layer_bench import rederive_auto
from .profiling.markdown import impl_summary, layer_table, model_table
from .profiling.report import plot
from .tables import write_csv, write_json


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result", type=Path)
    p.add_argument("--models", type=Path, help="a second JSON with model rows")
    p.add_argument("--rederive-auto", action="store_true",
                   help="recompute the gc2l:auto rows (and goals) from the committed impl table")
    p.add_argument("--rewrite", action="store_true", help="with --rederive-auto: rewrite the JSON and CSV in place")
    p.add_argument("--merge-table", action="store_true",
                   help="merge this result's fastest GC-2L impl per point into the committed impl table first")
    args = p.parse_args()
    data = json.loads(args.result.read_text())
    rows = data["layers"]
    if args.merge_table:
        m = data["machine"]
        merge_into_table(best_impls(rows), source=f"{m['device']}: {m.get('gpu_name') or m['cpu_model']}, "
                                                  f"torch {m['torch_version']}, {args.result.name}")
    if args.rederive_auto:
        rows = data["layers"] = rederive_auto(rows)
        dtypes = sorted({r["dtype"] for r in rows})
        data["goals"] = {"layers": {d: goals.layer_goals(rows, dtype=d) for d in dtypes},
                         "models": (data.get("goals") or {}).get("models", {})}
        data["config"]["auto_rows"] = "re-derived from the committed impl table by python -m benchmarks.bench_md"
        if args.rewrite:
            write_json(args.result, data)
            if rows:
                write_csv(args.result.with_suffix(".csv"), rows)
            m = data["machine"]
            plot(args.result.with_suffix(".png"), [r for r in rows if r["dtype"] == dtypes[0]], data["models"],
                 f"{m.get('gpu_name') or m['cpu_model']} · torch {m['torch_version']} · "
                 f"load {m['load_average_start']} → {m.get('load_average_end')} · auto rows re-derived")
    print(f"goals: `{json.dumps(data.get('goals'), default=str)}`\n")
    print(f"machine: `{json.dumps(data['machine'])}`\n")
    print(f"command: `{data['config'].get('command')}`\n")
    for grid in sorted({r["grid"] for r in rows}):
        print(f"### {grid}: GC-2L implementations over the grid\n\n{impl_summary(rows, grid)}\n")
        for layout in ("channels_last", "contiguous"):
            for mode in ("fwdbwd", "fwd"):
                table = layer_table(rows, grid, layout, mode)
                if table.count("\n") > 1:
                    print(f"#### {grid}, {layout}, {mode}\n\n{table}\n")
    models = data["models"] or (json.loads(args.models.read_text())["models"] if args.models else [])
    for task in ("train", "infer"):
        if any(r["task"] == task for r in models):
            print(f"### models: {task}\n\n{model_table(models, task)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
