#!/usr/bin/env python3
"""GC-2L for any CNN on real data: a timm ResNet trained dense on Fashion-MNIST here, converted to GC / GC-2L.

The dense source is ``timm.create_model(<model>, in_chans=1, num_classes=10)`` trained on 28×28 Fashion-MNIST
(no pretrained weights exist on this machine). For each N it is converted with the one-line API,
``tglc_zoo.convert.create_grouped(<model>, pretrained=<its weights file>, conv_type=..., groups=N, ...)``,
and four arms are measured with the *same* fine-tuning loop on the same images:

* ``gc_block_jacobi``   GC: the dense kernels' diagonal blocks;
* ``gc2l_optimal``      GC-2L with the least-squares coarse level;
* ``gc2l_calibrated``   the same, fitted to each layer's real input patches (``calibration_data``);
* ``gc2l_scratch``      the same GC-2L architecture from its random initialisation.

Each arm is evaluated right after conversion, with BatchNorm statistics re-estimated, and after fine-tuning;
the fine-tuned model is saved with ``save_pretrained`` and reloaded with ``from_pretrained`` (the record says
whether the reloaded model's outputs are identical). Every run writes one JSON record under ``--records``
(rerunning skips finished runs: the study is resumable); the end rewrites the table in ``--docs`` between
its markers and the summary ``--json``.

    nice python -m experiments.convert_any_study
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Subset

import tglc_zoo
from tglc_zoo.convert import build_grouped, create_grouped, recalibrate_batchnorm
from tglc_zoo.convert.calibration import dataset_images
from tglc_zoo.data import build_datasets
from tglc_zoo.layers.flops import model_flops
from tglc_zoo.training.finetune import evaluate
from tglc_zoo.training.loop import train_step
from tglc_zoo.training.schedule import build_scheduler
from tglc_zoo.util.atomic import atomic_write_json

from .markdown import replace_section

ARMS: tuple[str, ...] = ("gc_block_jacobi", "gc2l_optimal", "gc2l_calibrated", "gc2l_scratch")
ARM_LABELS = {"gc_block_jacobi": "GC, block Jacobi", "gc2l_optimal": "GC-2L, optimal",
              "gc2l_calibrated": "GC-2L, optimal + calibration", "gc2l_scratch": "GC-2L, from scratch"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18", help="timm model name (built with in_chans=1, num_classes=10)")
    p.add_argument("--groups", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--source-epochs", type=int, default=3)
    p.add_argument("--source-subset", type=int, default=20000, help="training images of the dense source (0 = all)")
    p.add_argument("--source-lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning / from-scratch epochs")
    p.add_argument("--train-subset", type=int, default=5120, help="fine-tuning images per epoch (0 = all 60,000)")
    p.add_argument("--test-subset", type=int, default=2000, help="test images (0 = all 10,000)")
    p.add_argument("--calib-images", type=int, default=256, help="calibration images (outside the fine-tuning subset)")
    p.add_argument("--max-iter", type=int, default=10, help="ALS sweeps of the calibrated fit")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/convert_any_study", help="weights and checkpoint folders (not committed)")
    p.add_argument("--records", default="docs/convert_any/records", help="one JSON record per run (committed)")
    p.add_argument("--json", default="docs/convert_any_study.json")
    p.add_argument("--docs", default="docs/convert_any.md", help="markdown file whose study section is rewritten")
    return p.parse_args(argv)


def _subset(ds: Any, count: int, seed: int) -> Any:
    if not count:
        return ds
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return Subset(ds, order[:count].tolist())


def train(model: torch.nn.Module, data: Any, *, epochs: int, lr: float, batch_size: int, seed: int) -> list[float]:
    """SGD (momentum 0.9, weight decay 5e-4, cosine decay), the whole network; returns the epochs' mean losses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    scheduler = build_scheduler(optimizer, steps_per_epoch=len(loader), epochs=epochs, schedule="cosine")
    losses = []
    for epoch in range(epochs):
        model.train()
        total, seen = 0.0, 0
        for x, y in loader:
            total += float(train_step(model, x, y, optimizer).loss_sum)
            seen += len(y)
            scheduler.step()
        losses.append(total / seen)
        print(f"  epoch {epoch + 1}/{epochs}: train loss {losses[-1]:.4f}", flush=True)
    return losses


def _record(args: argparse.Namespace, name: str) -> Path:
    return Path(args.records) / f"{name}.json"


def _env(args: argparse.Namespace) -> dict[str, Any]:
    return dict(machine=f"{platform.machine()} CPU", threads=args.threads, torch=torch.__version__,
                timm=timm.__version__, python=platform.python_version())


def run_source(args: argparse.Namespace, sets: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    weights = Path(args.out) / "source" / "model.safetensors"
    path = _record(args, "source")
    if path.exists() and weights.exists():
        print("[study] source: cached", flush=True)
        return json.loads(path.read_text()), weights
    print(f"[study] source: training dense {args.model} ...", flush=True)
    torch.manual_seed(args.seed)
    model = timm.create_model(args.model, in_chans=1, num_classes=10)
    t0 = time.time()
    losses = train(model, _subset(sets["train_full"], args.source_subset, args.seed + 2), epochs=args.source_epochs,
                   lr=args.source_lr, batch_size=args.batch_size, seed=args.seed)
    seconds = time.time() - t0
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    record = dict(run="source", model=args.model, params=sum(p.numel() for p in model.parameters()),
                  flops=model_flops(model.eval(), (1, 1, 28, 28)), train_losses=losses,
                  top1=evaluate(model, sets["test"])["top1"], top1_full_test=evaluate(model, sets["test_full"])["top1"],
                  seconds_train=round(seconds, 1), epochs=args.source_epochs, train_subset=args.source_subset,
                  lr=args.source_lr, finished=time.strftime("%Y-%m-%d %H:%M:%S"), environment=_env(args))
    atomic_write_json(path, record)
    print(f"[study] source: top1 {record['top1']:.2f}% (full test set {record['top1_full_test']:.2f}%)", flush=True)
    return record, weights


def build_arm(arm: str, groups: int, weights: Path, calib: torch.Tensor, args: argparse.Namespace
              ) -> torch.nn.Module:
    common = dict(num_classes=10, in_chans=1, input_size=(1, 28, 28))
    if arm == "gc_block_jacobi":
        return create_grouped(args.model, weights, conv_type="gc", groups=groups, method="block_jacobi", **common)
    if arm == "gc2l_optimal":
        return create_grouped(args.model, weights, conv_type="gc2l", groups=groups, method="optimal", **common)
    converted = create_grouped(args.model, weights, conv_type="gc2l", groups=groups, method="optimal",
                               calibration_data=calib if arm == "gc2l_calibrated" else None, max_iter=args.max_iter,
                               **common)
    if arm == "gc2l_calibrated":
        return converted
    torch.manual_seed(args.seed)  # the same architecture, randomly initialised
    scratch = build_grouped(converted.grouping, converted.pretrained_cfg)
    scratch.conversion_report = converted.conversion_report
    return scratch


def run_arm(arm: str, groups: int, weights: Path, sets: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    t0 = time.time()
    model = build_arm(arm, groups, weights, sets["calib"], args).eval()
    t_convert = time.time() - t0
    rep = model.conversion_report
    converted = evaluate(model, sets["test"])
    bn = evaluate(recalibrate_batchnorm(copy.deepcopy(model), sets["calib"]), sets["test"])
    t1 = time.time()
    losses = train(model, sets["train"], epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    t_tune = time.time() - t1
    tuned = evaluate(model, sets["test"])
    folder = tglc_zoo.save_pretrained(model.eval(), Path(args.out) / f"n{groups}" / arm, dataset="fmnist",
                                      metrics={"top1": tuned["top1"]})
    reloaded = tglc_zoo.from_pretrained(folder).eval()
    x = sets["calib"][:32]
    with torch.no_grad():
        identical = bool(torch.equal(reloaded(x), model(x)))
    scratch = arm == "gc2l_scratch"
    return dict(
        run=f"n{groups}_{arm}", arm=arm, label=ARM_LABELS[arm], groups=groups, model=args.model,
        params=sum(p.numel() for p in model.parameters()), flops=rep.flops_after, replaced=len(rep),
        kept=[(s.name, s.reason) for s in rep.skipped],
        mean_relative_error=None if scratch else rep.mean_relative_error,
        mean_relative_block_jacobi_error=None if scratch else rep.mean_relative_block_jacobi_error,
        error_metric="input second moment (calibrated)" if rep.calibrated and not scratch else "kernel Frobenius",
        top1_converted=converted["top1"], top1_bn_recalibrated=bn["top1"], top1_finetuned=tuned["top1"],
        loss_finetuned=tuned["loss"], train_losses=losses, reload_identical=identical,
        seconds_convert=round(t_convert, 1), seconds_finetune=round(t_tune, 1),
        finished=time.strftime("%Y-%m-%d %H:%M:%S"), environment=_env(args))


def markdown(results: dict[str, Any]) -> str:
    cfg, src = results["config"], results["source"]
    test = (f"a fixed {cfg['test_subset']:,}-image random subset of the test set" if cfg["test_subset"]
            else "the full test set")
    sub = (f"a fixed {cfg['train_subset']:,}-image random subset of the 60,000 training images"
           if cfg["train_subset"] else "all 60,000 training images")
    lines = [
        f"Source: timm `{cfg['model']}` (`in_chans=1, num_classes=10`, 28×28 inputs), trained dense here for "
        f"{cfg['source_epochs']} epochs on a {cfg['source_subset']:,}-image subset (SGD lr {cfg['source_lr']}, "
        f"cosine): {src['params']:,} parameters, {src['flops'] / 1e6:.1f} MFLOPs/image, top-1 "
        f"**{src['top1']:.2f}%** on {test} ({src['top1_full_test']:.2f}% on the full test set).",
        "",
        f"Every arm: converted with `create_grouped('{cfg['model']}', pretrained=<the source's weights file>, "
        "conv_type=..., groups=N, ...)` (every dense conv but the stem), then the same fine-tuning: "
        f"{cfg['epochs']} epoch(s) over {sub}, SGD momentum 0.9, weight decay 5e-4, batch {cfg['batch_size']}, "
        f"lr {cfg['lr']} with cosine decay, seed {cfg['seed']}. Top-1 (%) on {test}. Calibration: "
        f"{cfg['calib_images']} training images outside the fine-tuning subset, up to {cfg['max_iter']} ALS "
        "sweeps. *+ BN re-estimation*: right after conversion, BatchNorm statistics re-estimated on the "
        "calibration images (fine-tuning starts from the plain conversion). Layer error: mean over replaced "
        "layers of the fit's relative error (block Jacobi's in brackets), in the metric of the fit.",
        "",
        f"| N | model | parameters | MFLOPs | after conversion | + BN re-estimation | after {cfg['epochs']} "
        "epoch(s) | layer error (block Jacobi) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        err = (f"{r['mean_relative_error']:.3f} ({r['mean_relative_block_jacobi_error']:.3f})"
               if r["mean_relative_error"] is not None else "—")
        lines.append(f"| {r['groups']} | {r['label']} | {r['params']:,} | {r['flops'] / 1e6:.1f} | "
                     f"{r['top1_converted']:.2f} | {r['top1_bn_recalibrated']:.2f} | {r['top1_finetuned']:.2f} | "
                     f"{err} |")
    secs = src["seconds_train"] + sum(r["seconds_convert"] + r["seconds_finetune"] for r in results["runs"])
    env = results["environment"]
    reload_ok = all(r["reload_identical"] for r in results["runs"])
    lines += ["", f"Every fine-tuned model saved with `save_pretrained` and reloaded with `from_pretrained`: outputs "
                  f"{'identical' if reload_ok else 'NOT identical'} in every run. Measured on {env['machine']} "
                  f"({env['threads']} thread, torch {env['torch']}, timm {env['timm']}), a machine shared with "
                  f"other jobs; training and conversion took {secs / 60:.0f} min in all. Regenerate with "
                  f"`{results['command']}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    Path(args.records).mkdir(parents=True, exist_ok=True)
    train_full, test_full, _ = build_datasets("fmnist", args.data_dir)
    sets: dict[str, Any] = dict(train_full=train_full, test_full=test_full,
                                train=_subset(train_full, args.train_subset, args.seed),
                                test=_subset(test_full, args.test_subset, args.seed + 1))
    # calibration images: outside the fine-tuning subset (the same random order as _subset's)
    sets["calib"] = dataset_images("fmnist", args.calib_images, data_dir=args.data_dir, seed=args.seed,
                                   exclude=args.train_subset or 0)
    source, weights = run_source(args, sets)
    runs = []
    for groups in args.groups:
        for arm in args.arms:
            path = _record(args, f"n{groups}_{arm}")
            if path.exists():
                print(f"[study] N={groups} {arm}: cached", flush=True)
                runs.append(json.loads(path.read_text()))
                continue
            print(f"[study] N={groups} {arm} ...", flush=True)
            row = run_arm(arm, groups, weights, sets, args)
            atomic_write_json(path, row)
            print(f"[study] N={groups} {arm}: converted {row['top1_converted']:.2f}% -> BN "
                  f"{row['top1_bn_recalibrated']:.2f}% -> fine-tuned {row['top1_finetuned']:.2f}% "
                  f"({row['seconds_convert']:.0f}s + {row['seconds_finetune']:.0f}s)", flush=True)
            runs.append(row)
    results = dict(
        command="nice python -m experiments.convert_any_study " + " ".join(argv if argv is not None else sys.argv[1:]),
        config={k: v for k, v in vars(args).items() if k not in ("json", "docs", "out", "records")},
        source=source, environment=_env(args), runs=runs)
    atomic_write_json(Path(args.json), results)
    table = markdown(results)
    replace_section(Path(args.docs), "convert_any_study", table, create_title="GC-2L for any CNN")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
