"""The figure a user reads: each model's training speed-up over SC beside its FLOP reduction, eager and compiled."""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tglc_zoo.util.atomic import atomic_write

__all__ = ["plot_speedups"]


def plot_speedups(rows: Sequence[dict[str, Any]], arch: str, path: Path, dtype: str = "fp32") -> Path | None:
    """Bars: training img/s relative to SC for GC and GC-2L at every N (eager, and ``torch.compile`` where
    measured); a mark on each bar: the FLOP reduction it would reach if time followed FLOPs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["arch"] == arch and r["task"] == "train" and r["dtype"] == dtype
           and r["conv"] in ("gc", "gc2l") and r.get("speedup/sc") is not None]
    if not sel:
        return None
    modes = sorted({bool(r.get("compiled", False)) for r in sel})
    groups = sorted({r["groups"] for r in sel})
    labels, speedups, flops, colors = [], [], [], []
    palette = {("gc", False): "#9ecae1", ("gc", True): "#3182bd", ("gc2l", False): "#fdae6b", ("gc2l", True): "#e6550d"}
    for n in groups:
        for conv in ("gc", "gc2l"):
            for compiled in modes:
                r = next((x for x in sel if x["groups"] == n and x["conv"] == conv
                          and bool(x.get("compiled", False)) == compiled), None)
                if r is None:
                    continue
                labels.append(f"{conv.upper().replace('GC2L', 'GC-2L')} N={n}" + ("\ncompiled" if compiled else ""))
                speedups.append(r["speedup/sc"])
                flops.append(r["flops_sc/flops"])
                colors.append(palette[(conv, compiled)])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels)), 4.2))
    xs = range(len(labels))
    ax.bar(xs, speedups, color=colors)
    ax.scatter(xs, flops, marker="_", s=600, color="k", label="FLOP reduction (SC FLOPs / FLOPs)")
    for x, s in zip(xs, speedups):
        ax.text(x, s, f"{s:.2f}×", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("training img/s relative to SC")
    ax.set_title(f"{arch}: training speed-up over SC (bars) and FLOP reduction (marks)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return path
