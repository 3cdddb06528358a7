"""The study's two figures: test error against N (the paper's Figure 5) and training loss per epoch (Figure 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tglc_zoo.layers import CONV_LABELS
from tglc_zoo.util.atomic import atomic_path

from .cells import CellTable
from .records import RunRecord

_GROUPED = ("gc", "gc2l", "shuffle", "flgc")


def plot_error_vs_groups(cells: CellTable, path: Path, title: str) -> None:
    """Test error against N, one line per conv type (mean ± std, every seed as a dot), SC as a horizontal
    reference with its ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for conv_type in _GROUPED:
        row = sorted((c for c in cells if c.conv_type == conv_type), key=lambda c: c.groups)
        if not row:
            continue
        line = ax.errorbar([c.groups for c in row], [c.err_mean for c in row], yerr=[c.err_std for c in row],
                           marker="o", capsize=3, label=CONV_LABELS[conv_type])
        for c in row:  # every seed, as a small dot beside its cell's mean
            if c.several_seeds:
                ax.scatter([c.groups * 1.04] * len(c.errs), c.errs, s=9, alpha=0.6, color=line.lines[0].get_color())
    sc = cells.sc
    if sc is not None:
        ax.axhline(sc.err_mean, color="black", linestyle="--", label="SC")
        if sc.several_seeds:  # SC's seed spread (± 1 std) as a band
            ax.axhspan(sc.err_mean - sc.err_std, sc.err_mean + sc.err_std, color="black", alpha=0.08)
    ax.set_xscale("log", base=2)
    ticks = sorted({c.groups for c in cells if c.conv_type != "sc"})
    if ticks:
        ax.set_xticks(ticks, [str(n) for n in ticks])
        ax.minorticks_off()
    ax.set_xlabel("number of groups N")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)


def plot_training_loss(records: list[RunRecord], groups: int, path: Path, title: str) -> None:
    """Training loss per epoch of SC, GC and GC-2L at one N (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in records:
        shown = r.conv_type == "sc" or (r.conv_type in ("gc", "gc2l") and r.groups == groups)
        if r.seed != 0 or not shown:
            continue
        label = CONV_LABELS[r.conv_type] + ("" if r.conv_type == "sc" else f" (N = {groups})")
        ax.plot(range(1, len(r.train_loss) + 1), list(r.train_loss), marker="o", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)


def _save_fig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
