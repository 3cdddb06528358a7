"""Markdown summaries of a benchmark JSON (for docs/benchmarks.md): goals, layer rows, model rows."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def _f(v: Any, nd: int = 2) -> str:
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def layer_table(rows: Sequence[dict[str, Any]], grid: str, layout: str, mode: str, dtype: str = "fp32") -> str:
    """One line per (shape, N): times of SC/GC/GC-2L(auto), ratios, and the other types' t/GC."""
    sel = [r for r in rows if r["grid"] == grid and r["layout"] == layout and r["mode"] == mode and r["dtype"] == dtype]
    points: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in sel:
        points.setdefault((r["shape"], r["groups"]), {})[r["conv"]] = r
    head = ("| shape | N | SC ms | GC ms | GC-2L ms (impl) | t/GC | FLOPs/GC | t/GC ÷ FLOPs/GC | t/SC | FLOPs/SC "
            "| Shuffle t/GC | FLGC t/GC | FLGC-deployed t/GC |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (shape, n), p in points.items():
        a = p.get("gc2l:auto")
        if a is None:
            continue
        lines.append("| " + " | ".join([
            shape, str(n), _f(p.get("sc", {}).get("time_ms")), _f(p.get("gc", {}).get("time_ms")),
            f"{_f(a['time_ms'])} ({a.get('auto_impl')})", _f(a["t/gc"]), _f(a["flops/gc"], 3),
            _f(a["t/gc"] / a["flops/gc"]), _f(a["t/sc"]), _f(a["flops/sc"], 3),
            _f(p.get("shuffle", {}).get("t/gc")), _f(p.get("flgc", {}).get("t/gc")),
            _f(p.get("flgc:deployed", {}).get("t/gc"))]) + " |")
    return "\n".join(lines)


def impl_summary(rows: Sequence[dict[str, Any]], grid: str, dtype: str = "fp32") -> str:
    """Per GC-2L implementation: median and max of t/GC ÷ FLOPs/GC over the grid, and how often it wins."""
    impls = sorted({r["conv"] for r in rows if r["conv"].startswith("gc2l:")})
    lines = ["| impl | rows | median t/GC ÷ FLOPs/GC | max | rows ≤ 1.25 | rows slower than SC |",
             "|---|---|---|---|---|---|"]
    for impl in impls:
        sel = [r for r in rows if r["conv"] == impl and r["grid"] == grid and r["dtype"] == dtype and r.get("t/gc")]
        if not sel:
            continue
        slack = [r["t/gc"] / r["flops/gc"] for r in sel]
        lines.append(f"| {impl} | {len(sel)} | {statistics.median(slack):.2f} | {max(slack):.2f} | "
                     f"{sum(s <= 1.25 for s in slack)} | {sum(r['t/sc'] > 1 for r in sel)} |")
    return "\n".join(lines)


def model_table(rows: Sequence[dict[str, Any]], task: str) -> str:
    lines = ["| model | conv | N | dtype | batch | ms | img/s | speed-up vs SC | FLOPs(SC)/FLOPs "
             "| speed-up ÷ FLOP reduction |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["task"] != task:
            continue
        frac = r["speedup/sc"] / r["flops_sc/flops"] if r.get("speedup/sc") and r.get("flops_sc/flops") else None
        lines.append(f"| {r['arch']} | {r['conv']} | {r['groups']} | {r['dtype']} | {r['batch']} | "
                     f"{_f(r['time_ms'], 1)} | "
                     f"{_f(r['img_per_s'])} | {_f(r.get('speedup/sc'))} | {_f(r.get('flops_sc/flops'))} | {_f(frac)} |")
    return "\n".join(lines)
