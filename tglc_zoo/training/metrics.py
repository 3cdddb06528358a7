"""Per-epoch metrics: JSONL and CSV files rewritten atomically from the run's history, a PNG plot in
the style of the paper's Figure 4 (training loss and test error per epoch), TensorBoard if installed."""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..util.atomic import atomic_path, atomic_write

__all__ = ["write_metrics", "plot_history", "plot_runs", "TensorBoardLogger"]

COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_err", "epoch_time_s",
           "train_img_per_s", "elapsed_s")


def write_metrics(run_dir: str | os.PathLike[str], history: Sequence[Mapping[str, Any]]) -> None:
    """``metrics.jsonl`` (one object per epoch) and ``metrics.csv`` from the whole history.

    Rewriting from the checkpointed history (rather than appending) keeps the files consistent with
    the last checkpoint after a crash and resume.
    """
    run_dir = Path(run_dir)
    atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(dict(row)) + "\n" for row in history))
    buf = io.StringIO()
    extra = sorted({k for row in history for k in row} - set(COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, *extra], extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow(dict(row))
    atomic_write(run_dir / "metrics.csv", buf.getvalue())


def plot_runs(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike[str],
              title: str | None = None) -> Path:
    """Training loss (log scale) and test error (%) per epoch for one or more labelled runs."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4))
    for label, history in runs.items():
        epochs = [row["epoch"] for row in history]
        ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label=label)
        ax_err.plot(epochs, [100.0 * row["test_err"] for row in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
    ax_err.set(xlabel="epoch", ylabel="test error (%)", title="Test error")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path


def plot_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], label: str,
                 title: str | None = None) -> Path:
    return plot_runs({label: history}, path, title)


class TensorBoardLogger:
    """Scalars to ``RUN_DIR/tensorboard`` when the ``tensorboard`` package is installed; else a no-op."""

    def __init__(self, run_dir: str | os.PathLike[str], enabled: bool = True) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        for key in ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_err", "train_img_per_s"):
            if key in row and row[key] is not None:
                self.writer.add_scalar(key, row[key], row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
