"""The layout of a benchmark result (the columns printed for layer and model rows, the JSON document) and its
PNG plot; the files are written with ``benchmarks.tables``."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .goals import LAYER_SLACK_EACH, MODEL_FRACTION

LAYER_COLUMNS = ("grid", "shape", "groups", "layout", "mode", "dtype", "conv", "time_ms", "t/gc", "flops/gc",
                 "t/sc", "flops/sc", "auto_impl", "load_average")
MODEL_COLUMNS = ("arch", "conv", "groups", "compiled", "task", "dtype", "batch", "time_ms", "img_per_s", "speedup/sc",
                 "flops_sc/flops", "load_average")


def result_document(machine: dict[str, Any], config: dict[str, Any], layer_rows: Sequence[dict[str, Any]],
                    model_rows: Sequence[dict[str, Any]], goals: dict[str, Any] | None) -> dict[str, Any]:
    """What a benchmark's JSON file holds: the machine, the command's config, the goals and every row."""
    return {"machine": machine, "config": config, "goals": goals, "layers": list(layer_rows),
            "models": list(model_rows)}


def plot(path: Path, layer_rows: Sequence[dict[str, Any]], model_rows: Sequence[dict[str, Any]], title: str) -> None:
    """Layers (if any): GC-2L time ratio to GC against its FLOP ratio, every row, one marker per impl.
    Models (if any): training throughput relative to SC against the FLOP reduction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p, rows in (("layers", layer_rows), ("models", model_rows)) if rows] or ["layers"]
    fig, axes_ = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False)
    axes = dict(zip(panels, axes_[0]))
    ax = axes.get("layers")
    if ax is not None:
        _plot_layers(ax, layer_rows)
    if "models" in axes:
        _plot_models(axes["models"], model_rows)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_layers(ax: Any, layer_rows: Sequence[dict[str, Any]]) -> None:
    markers = {"gc2l:split": "x", "gc2l:addmm": "^", "gc2l:fused": "s", "gc2l:dense": "d", "gc2l:auto": "o"}
    for conv, marker in markers.items():
        pts = [(r["flops/gc"], r["t/gc"]) for r in layer_rows if r["conv"] == conv and r.get("t/gc")]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=conv, alpha=0.7 if conv == "gc2l:auto" else 0.35,
                       s=30 if conv == "gc2l:auto" else 14)
    ratios = [r["flops/gc"] for r in layer_rows if r["conv"].startswith("gc2l") and r.get("flops/gc")]
    if ratios:
        lo, hi = min(ratios), max(ratios)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="time = FLOPs")
        ax.plot([lo, hi], [LAYER_SLACK_EACH * lo, LAYER_SLACK_EACH * hi], "k--", lw=0.8,
                label=f"goal: {LAYER_SLACK_EACH:g} × FLOPs")
    ax.set_xlabel("FLOPs(GC-2L) / FLOPs(GC)")
    ax.set_ylabel("t(GC-2L) / t(GC)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("layers (every row)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _plot_models(ax: Any, model_rows: Sequence[dict[str, Any]]) -> None:
    train = [r for r in model_rows if r["task"] == "train" and r.get("speedup/sc")]
    for r in train:
        ax.scatter(r["flops_sc/flops"], r["speedup/sc"], label=None)
        ax.annotate(f"{r['arch']} {r['conv']} N={r['groups']}", (r["flops_sc/flops"], r["speedup/sc"]), fontsize=6)
    if train:
        hi = max(r["flops_sc/flops"] for r in train)
        ax.plot([1, hi], [1, hi], "k-", lw=0.8, label="speed-up = FLOP reduction")
        ax.plot([1, hi], [MODEL_FRACTION, MODEL_FRACTION * hi], "k--", lw=0.8,
                label=f"goal: {MODEL_FRACTION:g} × FLOP reduction")
        ax.legend(fontsize=7)
    ax.set_xlabel("FLOPs(SC) / FLOPs(model)")
    ax.set_ylabel("train throughput / SC's")
    ax.set_title("models (training)")
