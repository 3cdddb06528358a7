"""``docs/parallel.md`` from the stored results of ``python -m benchmarks.parallel`` (nothing is measured here).

Every sentence that states a result is computed from the numbers it sits beside, so a rerun with other
numbers cannot contradict its own text.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tglc_zoo.paper import paper_tables

from ..tables import markdown_table
from .cost_model import Device, param_count, project, wrn_cifar_layers
from .shards import width_of

__all__ = ["render", "load_results"]

MiB = 2 ** 20
CHECKPOINT_FLOATS = 2  # a sharded checkpoint holds weights and momentum (gradients are not saved)


def _fmt_bytes(b: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= size:
            return f"{b / size:.2f} {unit}"
    return f"{b:.0f} B"


def _hours(text: str) -> float:
    h, m, s = (int(v) for v in re.fullmatch(r"(\d+)h(\d+)m(\d+)s", text).groups())  # type: ignore[union-attr]
    return h + m / 60 + s / 3600


def _list(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values) if values else "none"


def load_results(out: Path) -> dict[str, Any]:
    def read(name: str) -> Any:
        path = out / name
        return json.loads(path.read_text()) if path.is_file() else None

    return {"measured": read("measured.json"), "projection": read("projection.json"),
            "memory": read("trainer_memory.json"), "grad_sync": read("grad_sync.json")}


# -- memory per rank (tglc-train under torchrun) -----------------------------------------------------------
def _per_image_activations(act: dict[str, Any], k: int, image: int) -> float:
    measured = {int(key): v for key, v in act["measured"].items()}
    per_image = measured.get(k, measured[1] + (measured[2] - measured[1]) * (k - 1))
    return per_image * (image / 32) ** 2  # measured at 32x32; activations scale with the pixels


def _projected(model: str, n: int, world: int, batch: int, image: int, act: dict[str, Any]) -> float:
    """The cost model's memory of one process: weights, gradients, momentum and activations at this batch."""
    depth, k = width_of(model)
    per_image = _per_image_activations(act, k, image)
    if world == 1:  # one process holds the whole GC-2L network and all its activations
        return 12 * param_count(wrn_cifar_layers(depth, k), "gc2l", n) + batch * per_image
    rows = {r["strategy"]: r for r in project(depth, k, n, Device(), per_image, batch=batch)}
    return float(rows["group"]["memory_bytes"])


def _image(dataset: str) -> int:
    return 32 if dataset == "fmnist32" else 28


def _datasets(runs: list[dict[str, Any]]) -> str:
    sizes = sorted({_image(r["dataset"]) for r in runs})
    return "Fashion-MNIST images (" + ", ".join(f"{s}×{s}" for s in sizes) + ")"


def memory_section(mem: dict[str, Any], act: dict[str, Any]) -> str:
    runs = [r for r in mem["runs"] if r["ok"]]
    base = mem["import_baseline_mib"]
    grid = [r for r in runs if r["label"] in ("single", "group", "before")]
    rows, ratios = [], []
    for model in dict.fromkeys(r["model"] for r in grid):
        for n in dict.fromkeys(r["groups"] for r in grid if r["model"] == model):
            sel = {r["label"]: r for r in grid if r["model"] == model and r["groups"] == n}
            single, group, before = sel.get("single"), sel.get("group"), sel.get("before")
            if single is None or group is None:
                continue
            depth, k = width_of(model)
            params = param_count(wrn_cifar_layers(depth, k), "gc2l", n)
            one, per_rank = max(single["peak_rss_mib"]), max(group["peak_rss_mib"])
            ratio = (per_rank - base) / (one - base)
            ratios.append((model, n, ratio))
            rows.append([model, n, f"{params:,}", group["batch"], f"{one:,.0f}",
                         f"{max(before['peak_rss_mib']):,.0f}" if before else "—", f"{per_rank:,.0f}",
                         f"{ratio:.2f} (1/N = {1 / n:.2f})",
                         f"{_projected(model, n, 1, group['batch'], _image(group['dataset']), act) / MiB:,.0f} / "
                         f"{_projected(model, n, n, group['batch'], _image(group['dataset']), act) / MiB:,.0f}",
                         f"{max(group['checkpoint_bytes']) / MiB:,.1f}", group["step_s"]])
    table = markdown_table(["model (GC-2L)", "N", "params (one process)", "batch", "one process: peak RSS MiB",
                    "before: per rank", "now: per rank", "now / one process, above the import", "cost model MiB: "
                    "one process / per rank", "checkpoint per rank MiB", "s / step (CPU)"], rows)
    worst = max(ratios, key=lambda t: t[2] * t[1]) if ratios else None
    sentences = [f"A process that only imports the trainer already holds {base:,.0f} MiB (torch, torchvision, timm, "
                 "the package); the other numbers include it, and the ratio column takes it out."]
    if worst is not None:
        sentences.append(f"Above it, a rank holds between {min(r[2] * r[1] for r in ratios):.2f} and "
                         f"{worst[2] * worst[1]:.2f} times 1/N of what one process holds "
                         f"(the most: {worst[0]} at N = {worst[1]}).")
    text = ["## Memory per rank (measured)", "",
            "`tglc-train --parallel group` under `torchrun`, against the same GC-2L-N model trained by one process "
            "(`python -m benchmarks.parallel --memory`, `benchmarks/parallel/trainer_memory.py`): real "
            f"{_datasets(grid)}, SGD with momentum, float32, one short epoch with its checkpoint. Peak RSS is each "
            "process's `ru_maxrss`, the largest over the ranks. \"before\" is the same command with the trainer of "
            f"commit {mem.get('before_commit') or '(none measured)'} (`--before-repo`). The cost model's column is "
            "weights, gradients, momentum and activations at this batch (`cost_model.project`).", "", table, "",
            " ".join(sentences)]
    t2 = [r for r in runs if r["label"].startswith("table2")]
    if t2:
        text += ["", table2_section(t2, mem, base)]
    return "\n".join(text)


def table2_section(runs: list[dict[str, Any]], mem: dict[str, Any], base: float) -> str:
    first = runs[0]
    depth, k = width_of(first["model"])
    layers = wrn_cifar_layers(depth, k)
    n = first["groups"]
    gc2l, sc = param_count(layers, "gc2l", n), param_count(layers, "sc", 1)
    head = layers[-1].cout * 10 + 10
    per_rank = (gc2l - head) / n + head
    rows = [[r["label"].replace("table2-resume", "resumed from its checkpoint").replace("table2", "first run"),
             r["world"], r["batch"], r["steps"], " / ".join(f"{v:,.0f}" for v in r["peak_rss_mib"]), r["step_s"],
             " / ".join(f"{b / MiB:,.0f}" for b in r["checkpoint_bytes"]), r["wall_s"]] for r in runs]
    table = markdown_table(["run", "processes", "batch", "steps", "peak RSS per rank MiB", "s / step (CPU)",
                    "checkpoint per rank MiB", "wall s"], rows)
    need = [["SC WRN-28-80, one device", f"{sc:,}", _fmt_bytes(12 * sc)],
            [f"GC-2L N = {n}, one process", f"{gc2l:,}", _fmt_bytes(12 * gc2l)],
            [f"GC-2L N = {n}, per rank of {n}", f"{per_rank:,.0f}", _fmt_bytes(12 * per_rank)]]
    paper = paper_tables()["table2_wrn28_w_cifar10_gc2l"][str(k)]
    peak = max(max(r["peak_rss_mib"]) for r in runs)
    return "\n".join([
        f"### Table 2's model: `wrn28_{k}_gc2l_n{n}` on {n} processes", "",
        f"WRN-28-{k} with GC-2L at N = {n} (the paper's Table 2 trains it on {paper[str(n)]['gpus']} GPUs: "
        f"{paper[str(n)]['params_M']} M parameters), trained group-parallel here on Fashion-MNIST zero-padded to "
        "32×32 (`fmnist32`), with a sharded checkpoint at the end of its epoch, then resumed from that "
        "checkpoint for another epoch (`--resume auto`). CPU step times only show that it runs.", "",
        table, "",
        "What the weights, gradients and momentum need in float32 (12 bytes per parameter, activations not "
        "included):", "",
        markdown_table(["", "parameters", "weights + gradients + momentum"], need), "",
        f"The largest rank peaked at {peak:,.0f} MiB, against {_fmt_bytes(12 * gc2l)} for the state alone of the "
        f"same model in one process and {_fmt_bytes(12 * sc)} for SC; the machine it ran on has "
        f"{mem.get('memory_gib', '?')} GiB. Each checkpoint file holds "
        f"its rank's weights and momentum: {CHECKPOINT_FLOATS} × 4 bytes × {per_rank:,.0f} parameters ≈ "
        f"{_fmt_bytes(CHECKPOINT_FLOATS * 4 * per_rank)} (DCP spreads the replicated tensors over the files)."])


# -- the gradient all-reduce across replicas --------------------------------------------------------------
def grad_sync_section(gs: dict[str, Any]) -> str:
    r0 = gs["ranks"][0]
    names = [k for k in r0 if isinstance(r0[k], dict)]
    rows = [[name, f"{r0[name]['step_s']:.3f}", f"{r0[name]['wait_s_per_step'] * 1e3:.1f}",
             f"{r0[name]['allreduces_per_step']:.0f}"] for name in names]
    waits = {k: r0[k]["wait_s_per_step"] * 1e3 for k in names}
    steps = [r0[k]["step_s"] for k in names]
    spread = (max(steps) - min(steps)) / min(steps)
    first, *rest = names
    changes = "; ".join(f"\"{k}\" {waits[k]:.1f} ms" for k in rest)
    return "\n".join([
        "## The gradient all-reduce across replicas (measured)", "",
        f"`{gs['model']}` GC-2L at N = {r0['groups']} on {r0['world']} processes (D = {r0['world'] // r0['groups']} "
        f"replicas), batch {gs['batch']} per replica, {r0['params_per_rank']:,} parameters per rank; median of "
        f"{gs['steps']} steps (`python -m benchmarks.parallel --grad-sync`, load average {gs['load_avg'][0]:.1f} "
        "when it started). \"wait\" is the time the end of backward waited for the all-reduces. The trainer uses "
        "the last row.", "",
        markdown_table(["all-reduce", "s / step", "wait ms / step", "all-reduces / step"], rows), "",
        f"The wait per step was {waits[first]:.1f} ms \"{first}\"; {changes}. The step times of the three differ "
        f"by {spread * 100:.1f} % on this shared 2-core CPU, where the processes compete for the same cores."])


def predicted_activations(r: dict[str, Any], act: dict[str, Any]) -> float:
    """Cost-model activation bytes of one rank: the single-process network's / N, plus gathered representatives."""
    depth, k = width_of(r["model"])
    measured = {int(key): v for key, v in act["measured"].items()}
    per_image = measured.get(k, measured[1] + (measured[2] - measured[1]) * (k - 1))
    n = r["N"]
    reps = sum(n * layer.hw_out ** 2 * 4 for layer in wrn_cifar_layers(depth, k) if layer.replaced)
    return r["batch"] * (per_image / n + (reps * (1 - 1 / n) if r["conv_type"] == "gc2l" else 0))


def measuredmarkdown_table(rows: list[dict[str, Any]], act: dict[str, Any]) -> str:
    out = []
    for r in rows:
        if r["rank"] != 0:
            continue
        same = all(x["sent_bytes_per_step"] == r["sent_bytes_per_step"] for x in rows
                   if x["conv_type"] == r["conv_type"] and x["N"] == r["N"])
        out.append([r["model"], r["conv_type"], r["N"], f"{r['full_params']:,}", f"{r['params']:,}",
                    f"{r['split_params']:,} + {r['replicated_params']:,}", f"{r['param_fraction']:.4f}",
                    f"{r['param_MiB'] + r['grad_MiB'] + r['momentum_MiB']:.1f}",
                    f"{r['activations_MiB']:.1f} ({predicted_activations(r, act) / 2**20:.1f})",
                    f"{r['max_rss_MiB']:.0f}", f"{r['sent_bytes_per_step']:,}" + ("" if same else " (ranks differ!)"),
                    f"{r['predicted_bytes_per_step']:,}", f"{r['sent_bytes_per_inference']:,}", r["step_s"]])
    return markdown_table(["model", "conv", "N", "params (1 process)", "params / rank", "split + replicated",
                   "fraction", "weights+grads+momentum MiB", "saved activations MiB (cost model)", "peak RSS MiB",
                   "bytes sent / step / rank (counted)", "cost model", "bytes / inference", "step s (CPU)"], out)



# -- the projection ---------------------------------------------------------------------------------------
def projectionmarkdown_table(rows: list[dict[str, Any]]) -> str:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for n in dict.fromkeys(r["N"] for r in rows):
            sel = {r["strategy"]: r for r in rows if r["model"] == model and r["N"] == n}
            g, d, lay = sel["group"], sel["data"], sel["layer"]

            def cell(r: dict[str, Any]) -> str:
                fits = "" if r["fits"] else " ✗"
                return f"{r['step_s']:.3g} s / {_fmt_bytes(r['memory_bytes'])}{fits}"

            out.append([model, f"{n}{' †' if g['widened_stem'] else ''}", f"{g['params_total'] / 1e6:.1f} M",
                        cell(g), f"{g['comm_s'] * 1e3:.2f} ms ({_fmt_bytes(g['bytes_sent'])})", cell(d),
                        f"{d['comm_s'] * 1e3:.1f} ms", cell(lay), f"{lay['step_s'] / g['step_s']:.1f}×"])
    return markdown_table(["model", "N", "GC-2L params", "group-parallel: step / memory", "… of which comm",
                   "data-parallel (same net)", "… of which comm", "layer-wise SC", "layer-wise / group"], out)


def projection_reading(rows: list[dict[str, Any]]) -> str:
    """What the projection table says, computed from it."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        sel = [r for r in rows if r["model"] == model]
        ns = list(dict.fromkeys(r["N"] for r in sel))
        by = {(r["N"], r["strategy"]): r for r in sel}
        faster = [n for n in ns if by[(n, "group")]["step_s"] < by[(n, "data")]["step_s"]]
        leaner = [n for n in ns if by[(n, "group")]["memory_bytes"] < by[(n, "data")]["memory_bytes"]]
        best = min(ns, key=lambda n: by[(n, "group")]["step_s"])
        lines.append(f"* {model}: group parallelism's step is shorter than data parallelism's at N = {_list(faster)}, "
                     f"and it needs less memory per device at N = {_list(leaner)}; its shortest step is at N = {best}.")
    paper = paper_tables()["table2_wrn28_w_cifar10_gc2l"]["80"]
    ref = {(r["model"], r["N"], r["strategy"]): r for r in rows}
    if ("WRN-28-80", 4, "group") in ref:
        ratio = ref[("WRN-28-80", 4, "layer")]["step_s"] / ref[("WRN-28-80", 4, "group")]["step_s"]
        measured = _hours(paper["1"]["wall_clock"]) / _hours(paper["4"]["wall_clock"])
        lines.append(f"* The layer-wise SC baseline runs the whole SC network's FLOPs one device at a time: for "
                     f"WRN-28-80 on 4 devices the model puts it {ratio:.1f}× slower than group parallelism; the "
                     f"paper measured {paper['1']['wall_clock']} against {paper['4']['wall_clock']} "
                     f"({measured:.1f}×, Table 2; its devices, data loading and kernels are not modelled).")
    return "\n".join(lines)


def render(res: dict[str, Any], out: Path, doc: Path, machine: str) -> str:
    """The whole of docs/parallel.md."""
    rel = os.path.relpath(out, doc.parent)
    parts = [f"""# Group parallelism: measured and projected

Generated by `python -m benchmarks.parallel` ({machine}); data in `{rel}/`. How it works and how to use it:
README, sections "Group parallelism" and "Scaling out"."""]
    proj = res["projection"]
    act = proj["activation_bytes_per_image"] if proj else None
    if res["memory"] and act:
        parts.append(memory_section(res["memory"], act))
    if res["grad_sync"]:
        parts.append(grad_sync_section(res["grad_sync"]))
    measured = res["measured"]
    if measured and act:
        m = measured["rows"]
        parts.append(f"""## One shard per process (measured)

`{m[0]['model']}`, batch {m[0]['batch']} (the whole batch on every rank), SGD with momentum, float32, spawned gloo
processes on 127.0.0.1 (`benchmarks/parallel/shards.py`). "bytes sent" is counted by the collectives as they
run: per call, `(N − 1) ×` this rank's chunk (what a ring all-gather / reduce-scatter sends per rank); the "cost
model" column is `cost_model.group_comm_bytes` for the same shapes. GC sends only the pooled features (one
all-gather per forward); GC-2L adds one all-gather forward and one reduce-scatter backward per layer. Step times
are wall-clock on a shared 2-core CPU and only show that it runs.

{measuredmarkdown_table(m, act)}

{_counted_sentence(m)}""")
    if proj:
        device = Device(**proj["device"])
        rows = proj["rows"]
        widths = ",".join(dict.fromkeys(r["model"].rpartition("-")[2] for r in rows))
        ns = ", ".join(str(n) for n in dict.fromkeys(r["N"] for r in rows))
        batch = proj.get("batch", 128)
        act_lines = ", ".join(f"k={k}: {v / 2**20:.2f} MiB" for k, v in act["measured"].items())
        parts.append(f"""## Projected: WRN-28-{{{widths}}}, batch {batch}, N = {ns}

Cost model (`benchmarks/parallel/cost_model.py`), device: **{device.name}** — peak
{device.peak_flops / 1e12:.1f} TFLOP/s × efficiency {device.efficiency} sustained, links
{device.bandwidth / 1e9:.0f} GB/s per direction, {device.latency * 1e6:.0f} µs per message,
{device.memory / 2**30:.0f} GiB. Each cell: time per training step / memory per device (weights, gradients and
momentum in fp32 + autograd-saved activations); ✗ = does not fit in device memory.

* **group-parallel**: GC-2L with N groups on N devices; compute/N, plus per GC-2L layer a ring
  all-gather (forward) and reduce-scatter (backward) of B×H×W floats per device.
* **data-parallel**: the same GC-2L-N network replicated on N devices, B/N images each, ring all-reduce
  of all gradients.
* **layer-wise SC**: the SC network cut into N consecutive stages balanced by parameters, no pipelining
  (one device busy at a time) — the paper's baseline for WRN-28-60/80 in Table 2.
* Activation bytes per image were measured for SC WRN-28-k at batch 1 ({act_lines}) and extended
  linearly in k (the fit from k = 1, 2 is off by {act['fit_error_k10'] * 100:.2f}% at k = 10).
* † N = 32, 64: the paper's WRN stem has 16 channels, so N must divide 16; these rows project a variant whose
  stem has N channels (a negligible change in parameters and FLOPs). N ≤ 16 is the real model.
* Assumptions: no overlap of communication and compute, the same kernel efficiency at every N, ring collectives.

{projectionmarkdown_table(rows)}

![projection]({rel}/projection.png)

{projection_reading(rows)}""")
    return "\n\n".join(parts) + "\n"


def _counted_sentence(rows: list[dict[str, Any]]) -> str:
    same = sum(r["sent_bytes_per_step"] == r["predicted_bytes_per_step"] for r in rows)
    return (f"The counted bytes equal the cost model's in {same} of {len(rows)} rank rows"
            + (", so the communication term of the projection below is the implementation's." if same == len(rows)
               else "; where they differ, the projection's communication term is an estimate."))
