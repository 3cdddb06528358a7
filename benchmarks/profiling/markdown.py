"""Markdown summaries of a benchmark JSON (for docs/benchmarks.md): goals, layer rows, model rows."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ..tables import markdown_table
from .goals import LAYER_SLACK_EACH

LAYER_HEADER = ("shape", "N", "SC ms", "GC ms", "GC-2L ms (impl)", "t/GC", "FLOPs/GC", "t/GC ÷ FLOPs/GC", "t/SC",
                "FLOPs/SC", "Shuffle t/GC", "FLGC t/GC", "FLGC-deployed t/GC")
IMPL_HEADER = ("impl", "rows", "median t/GC ÷ FLOPs/GC", "max", f"rows ≤ {LAYER_SLACK_EACH:g}", "rows slower than SC")
MODEL_HEADER = ("model", "conv", "N", "dtype", "batch", "ms", "img/s", "speed-up vs SC", "FLOPs(SC)/FLOPs",
                "speed-up ÷ FLOP reduction")


def _f(v: Any, nd: int = 2) -> str:
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def layer_table(rows: Sequence[dict[str, Any]], grid: str, layout: str, mode: str, dtype: str = "fp32") -> str:
    """One line per (shape, N): times of SC/GC/GC-2L(auto), ratios, and the other types' t/GC."""
    sel = [r for r in rows if r["grid"] == grid and r["layout"] == layout and r["mode"] == mode and r["dtype"] == dtype]
    points: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in sel:
        points.setdefault((r["shape"], r["groups"]), {})[r["conv"]] = r
    lines = []
    for (shape, n), p in points.items():
        a = p.get("gc2l:auto")
        if a is None:
            continue
        lines.append([
            shape, str(n), _f(p.get("sc", {}).get("time_ms")), _f(p.get("gc", {}).get("time_ms")),
            f"{_f(a['time_ms'])} ({a.get('auto_impl')})", _f(a["t/gc"]), _f(a["flops/gc"], 3),
            _f(a["t/gc"] / a["flops/gc"]), _f(a["t/sc"]), _f(a["flops/sc"], 3),
            _f(p.get("shuffle", {}).get("t/gc")), _f(p.get("flgc", {}).get("t/gc")),
            _f(p.get("flgc:deployed", {}).get("t/gc"))])
    return markdown_table(LAYER_HEADER, lines)


def impl_summary(rows: Sequence[dict[str, Any]], grid: str, dtype: str = "fp32") -> str:
    """Per GC-2L implementation: median and max of t/GC ÷ FLOPs/GC over the grid, and how often it wins."""
    impls = sorted({r["conv"] for r in rows if r["conv"].startswith("gc2l:")})
    lines = []
    for impl in impls:
        sel = [r for r in rows if r["conv"] == impl and r["grid"] == grid and r["dtype"] == dtype and r.get("t/gc")]
        if not sel:
            continue
        slack = [r["t/gc"] / r["flops/gc"] for r in sel]
        lines.append([impl, len(sel), f"{statistics.median(slack):.2f}", f"{max(slack):.2f}",
                      sum(s <= LAYER_SLACK_EACH for s in slack), sum(r["t/sc"] > 1 for r in sel)])
    return markdown_table(IMPL_HEADER, lines)


def model_table(rows: Sequence[dict[str, Any]], task: str) -> str:
    lines = []
    for r in rows:
        if r["task"] != task:
            continue
        frac = r["speedup/sc"] / r["flops_sc/flops"] if r.get("speedup/sc") and r.get("flops_sc/flops") else None
        lines.append([r["arch"], r["conv"], r["groups"], r["dtype"], r["batch"], _f(r["time_ms"], 1),
                      _f(r["img_per_s"]), _f(r.get("speedup/sc")), _f(r.get("flops_sc/flops")), _f(frac)])
    return markdown_table(MODEL_HEADER, lines)
