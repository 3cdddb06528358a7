"""Part 2 of ``python -m benchmarks.parallel``: the cost model over WRN-28-k and N; its plot."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from tglc_zoo.util.atomic import atomic_write

from .cost_model import Device, project

__all__ = ["NAMES", "projection", "plot"]

NAMES = dict(group="group-parallel GC-2L", data="data-parallel GC-2L", layer="layer-wise SC")


def projection(args: Any, act: dict[str, Any]) -> tuple[Device, list[dict[str, Any]]]:
    device = Device(args.device_name, args.peak_flops, args.efficiency, args.bandwidth, args.latency,
                    args.memory_gib * 2**30)
    rows = []
    for k in args.project_widths:
        per_image = act["measured"].get(k, act["measured"][1] + (act["measured"][2] - act["measured"][1]) * (k - 1))
        for n in args.project_n:
            rows += project(28, k, n, device, per_image, batch=args.project_batch)
    return device, rows


def plot(rows: list[dict[str, Any]], device: Device, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5.6))
    styles = {"group": "-o", "data": "--s", "layer": ":^"}
    colors = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for strategy in ("group", "data", "layer"):
            sel = [r for r in rows if r["model"] == model and r["strategy"] == strategy]
            label = f"{model} {NAMES[strategy]}"
            line = ax_t.plot([r["N"] for r in sel], [r["step_s"] for r in sel], styles[strategy],
                             color=colors.get(model), label=label)[0]
            colors.setdefault(model, line.get_color())
            ax_m.plot([r["N"] for r in sel], [r["memory_bytes"] / 2**30 for r in sel], styles[strategy],
                      color=colors[model])
    ax_m.axhline(device.memory / 2**30, color="k", lw=0.8)
    ax_m.text(2, device.memory / 2**30 * 1.1, f"device memory {device.memory / 2**30:.0f} GiB", fontsize=8)
    for ax, title in ((ax_t, "projected time per training step (batch 128)"), (ax_m, "memory per device (GiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("devices N (= groups of the GC-2L network)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_ylabel("seconds")
    fig.legend(*ax_t.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"WRN-28-k on {device.name}: {device.peak_flops * device.efficiency / 1e12:.1f} TFLOP/s sustained, "
                 f"{device.bandwidth / 1e9:.0f} GB/s links (cost model, not measurements)", fontsize=10)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
