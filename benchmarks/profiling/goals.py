"""The speed bars GC-2L is measured against, evaluated on benchmark rows (never asserted in tests: timings are
not tests): per layer, t(GC-2L)/t(GC) within ``LAYER_SLACK_EACH`` × its FLOP ratio on every row and
``LAYER_SLACK_MEDIAN`` × at the median, and never slower than SC; per model, a training speed-up over SC of at
least ``MODEL_FRACTION`` × the FLOP reduction."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

LAYER_SLACK_EACH = 1.25
LAYER_SLACK_MEDIAN = 1.10
MODEL_FRACTION = 0.6


def layer_goals(rows: Sequence[dict[str, Any]], grid: str = "wrn28_10", conv: str = "gc2l:auto",
                dtype: str = "fp32") -> dict[str, Any] | None:
    """t(GC-2L)/t(GC) ≤ 1.25 × FLOP ratio on every row, ≤ 1.10 × at the median; t(GC-2L) ≤ t(SC) for N ≥ 2."""
    sel = [r for r in rows if r["grid"] == grid and r["conv"] == conv and r["dtype"] == dtype
           and r.get("t/gc") is not None and r.get("t/sc") is not None]
    if not sel:
        return None
    slack = [r["t/gc"] / r["flops/gc"] for r in sel]
    worst = max(sel, key=lambda r: r["t/gc"] / r["flops/gc"])
    slower_than_sc = [r for r in sel if r["t/sc"] > 1.0]
    return {
        "grid": grid, "conv": conv, "dtype": dtype, "rows": len(sel),
        "slack_max": max(slack), "slack_median": statistics.median(slack),
        "rows_over_1.25": sum(s > LAYER_SLACK_EACH for s in slack),
        "worst_row": {k: worst[k] for k in ("shape", "groups", "layout", "mode", "t/gc", "flops/gc", "auto_impl")
                      if k in worst},
        "every_row_met": max(slack) <= LAYER_SLACK_EACH,
        "median_met": statistics.median(slack) <= LAYER_SLACK_MEDIAN,
        "rows_slower_than_sc": len(slower_than_sc),
        "never_slower_than_sc_met": not slower_than_sc,
        "slower_than_sc": [{k: r[k] for k in ("shape", "groups", "layout", "mode", "t/sc")} for r in slower_than_sc],
    }


def model_goals(rows: Sequence[dict[str, Any]], arch: str = "wrn28_10", dtype: str = "fp32") -> list[dict[str, Any]]:
    """Train img/s of GC-2L ≥ 0.6 × (FLOPs(SC)/FLOPs(GC-2L)) × SC's img/s."""
    out = []
    for r in rows:
        if r["arch"] == arch and r["conv"] == "gc2l" and r["task"] == "train" and r["dtype"] == dtype \
                and r.get("speedup/sc") is not None:
            target = MODEL_FRACTION * r["flops_sc/flops"]
            out.append({"arch": arch, "groups": r["groups"], "compiled": r.get("compiled", False),
                        "speedup/sc": r["speedup/sc"],
                        "flops_sc/flops": r["flops_sc/flops"], "needed_speedup": target,
                        "fraction_of_flop_speedup": r["speedup/sc"] / r["flops_sc/flops"],
                        "met": r["speedup/sc"] >= target})
    return out
