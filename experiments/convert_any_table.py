#!/usr/bin/env python3
"""GC / GC-2L versions of popular timm CNNs: what is converted, what it costs, whether it runs group-parallel.

For each model (randomly initialised: no pretrained weights can be downloaded here) and N, the dense model
is converted with ``tglc_zoo.convert.to_grouped`` to GC (block Jacobi) and to GC-2L (optimal fit), and the
table reports the convolutions replaced, parameters and forward FLOPs at 224×224 (SC / GC / GC-2L), whether
``tglc_zoo.distributed`` can shard the GC-2L model (and if not, the module and op that stop it), and the
weight error of the conversion: the mean over replaced layers of ``‖W − W_fit‖² / ‖W‖²`` — **on random
weights**, where block Jacobi's error is ``1 − 1/N`` in expectation and GC-2L's is only slightly lower
(trained kernels are what the coarse level can exploit; see the Fashion-MNIST study).

One JSON record per model under ``--records`` (rerunning skips finished models); the table goes into
``--docs`` between its markers.

    nice python -m experiments.convert_any_table
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import timm
import torch

from tglc_zoo.convert import to_grouped
from tglc_zoo.distributed.plan import analyse
from tglc_zoo.errors import GroupParallelError
from tglc_zoo.layers.flops import model_flops
from tglc_zoo.util.atomic import atomic_write_json

from .markdown import replace_section

MODELS: tuple[str, ...] = ("resnet18", "resnet50", "resnext50_32x4d", "regnety_016", "mobilenetv2_100",
                           "mobilenetv3_large_100", "efficientnet_b0", "convnext_tiny")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--groups", type=int, nargs="+", default=[4, 8])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--records", default="docs/convert_any/table")
    p.add_argument("--docs", default="docs/convert_any.md")
    return p.parse_args(argv)


def _short(error: str) -> str:
    m = re.search(r"cannot split (.*?)\. Between", error)
    return (m.group(1) if m else error.split(". ")[0]).split("; ")[0]


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    size = (3, args.image_size, args.image_size)
    torch.manual_seed(args.seed)
    dense = timm.create_model(name, pretrained=False).eval()  # random init: nothing can be downloaded here
    convs = sum(1 for m in dense.modules() if isinstance(m, torch.nn.Conv2d))
    row: dict[str, Any] = dict(model=name, convs=convs, params=sum(p.numel() for p in dense.parameters()),
                               flops=model_flops(dense, (1, *size)), per_n={})
    for groups in args.groups:
        t0 = time.time()
        gc = to_grouped(dense, "gc", groups, "block_jacobi", input_size=size)
        gc2l = to_grouped(dense, "gc2l", groups, "optimal", input_size=size)
        rep_gc, rep = gc.conversion_report, gc2l.conversion_report
        try:
            comm = analyse(gc2l, groups, example_input=(2, *size)).communication()
            parallel: dict[str, Any] = dict(ok=True, collectives={op: sum(c["op"] == op for c in comm)
                                                                  for op in sorted({c["op"] for c in comm})})
        except GroupParallelError as e:
            parallel = dict(ok=False, error=str(e), short=_short(str(e)))
        reasons: dict[str, int] = {}
        for s in rep.skipped:
            key = s.reason.split(" (")[0].split(";")[0]
            reasons[key] = reasons.get(key, 0) + 1
        row["per_n"][str(groups)] = dict(
            replaced=len(rep), kept=reasons, params_gc=rep_gc.params_after, params_gc2l=rep.params_after,
            flops_gc=rep_gc.flops_after, flops_gc2l=rep.flops_after,
            error_gc=rep_gc.mean_relative_error, error_gc2l=rep.mean_relative_error,
            total_error_gc=rep_gc.total_relative_error, total_error_gc2l=rep.total_relative_error,
            group_parallel=parallel, seconds=round(time.time() - t0, 1))
        print(f"[table] {name} N={groups}: {len(rep)} of {convs} convs, params {row['params']:,} -> "
              f"{rep_gc.params_after:,} / {rep.params_after:,}, group-parallel "
              f"{'yes' if parallel['ok'] else 'no: ' + parallel['short']}", flush=True)
    row.update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), torch=torch.__version__, timm=timm.__version__,
               machine=f"{platform.machine()} CPU", threads=args.threads)
    return row


def _m(v: int) -> str:
    return f"{v / 1e6:.2f}"


def _g(v: int | None) -> str:
    return "—" if v is None else f"{v / 1e9:.2f}"


def _reasons(kept: dict[str, int]) -> dict[str, int]:
    """Reasons a conv was kept, with every "N=4 does not divide a->b channels" counted as one reason."""
    out: dict[str, int] = {}
    for reason, count in kept.items():
        key = "with channels N does not divide" if "does not divide" in reason else reason
        out[key] = out.get(key, 0) + count
    return out


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    lines = [
        f"Randomly initialised timm models (`timm.create_model(name)`, 1000 classes), converted with "
        f"`to_grouped(model, 'gc', N, 'block_jacobi')` and `to_grouped(model, 'gc2l', N, 'optimal')`. "
        f"Parameters in millions; forward GFLOPs per {args.image_size}×{args.image_size} image "
        "(`tglc_zoo.layers.flops.model_flops`: convolutions and linear layers). *Weight error*: mean over "
        "replaced layers of the relative kernel error `‖W − W_fit‖²/‖W‖²` — **measured on random weights** (no "
        "pretrained weights can be downloaded here), where GC's is `1 − 1/N` in expectation; trained weights are "
        "in the Fashion-MNIST table below. *Group-parallel*: `tglc_zoo.distributed` plans the GC-2L model at N "
        "(traced at batch 2); the collectives are per forward, besides GC-2L's coarse all-gathers.",
        "",
        "| model | N | convs replaced (of all) | params SC / GC / GC-2L (M) | GFLOPs SC / GC / GC-2L | "
        "weight error GC / GC-2L | group-parallel (GC-2L) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for n, d in r["per_n"].items():
            gp = d["group_parallel"]
            if gp["ok"]:
                extra = {k: v for k, v in gp["collectives"].items() if k != "coarse_allgather"}
                what = ", ".join(f"{v} {k}" for k, v in extra.items())
                par = f"yes ({what})" if what else "yes"
            else:
                par = f"no: {_short(gp['error'])}"
            lines.append(f"| {r['model']} | {n} | {d['replaced']} ({r['convs']}) | {_m(r['params'])} / "
                         f"{_m(d['params_gc'])} / {_m(d['params_gc2l'])} | {_g(r['flops'])} / {_g(d['flops_gc'])} / "
                         f"{_g(d['flops_gc2l'])} | {d['error_gc']:.3f} / {d['error_gc2l']:.3f} | {par} |")
    first = str(args.groups[0])
    kept = "; ".join(f"{r['model']}: " + ", ".join(f"{v} {k}" for k, v in _reasons(r["per_n"][first]["kept"]).items())
                     for r in rows)
    env = rows[0] if rows else {}
    lines += ["", f"Convolutions kept, by reason (N = {args.groups[0]}): {kept}.", "",
              f"Regenerate with `{command}` (on {env.get('machine')}, torch {env.get('torch')}, "
              f"timm {env.get('timm')})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    records = Path(args.records)
    records.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        path = records / f"{name}.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
            print(f"[table] {name}: cached", flush=True)
            continue
        row = measure(name, args)
        atomic_write_json(path, row)
        rows.append(row)
    command = "nice python -m experiments.convert_any_table " + " ".join(argv if argv is not None else sys.argv[1:])
    table = markdown(rows, args, command.strip())
    replace_section(Path(args.docs), "convert_any_table", table, create_title="GC-2L for any CNN")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
