#!/usr/bin/env python3
"""Dense → grouped conversion on Fashion-MNIST: accuracy right after conversion and after fine-tuning.

For each N, four arms are trained with the *same* loop (``tglc_zoo.training.finetune.finetune``: SGD, cosine
decay, the whole network at one learning rate) for the same number of epochs on the same images:

* ``gc_block_jacobi``     GC: the SC model's diagonal blocks (``to_grouped(sc, "gc", N, "block_jacobi")``);
* ``gc2l_optimal``        GC-2L with the least-squares coarse level (``method="optimal"``);
* ``gc2l_calibrated``     the same, fitted to each layer's real input patches (``calibration_data``);
* ``gc2l_scratch``        the same GC-2L architecture from its random initialisation.

Every arm is saved with ``save_pretrained`` and fine-tuned from that folder. Results are cached per
arm under --out (rerunning skips finished arms); the JSON and the markdown table are rewritten at the
end, the table into docs/convert.md between its ``convert_study`` markers.

    python -m experiments.convert_study --source runs/convert_study/sc_source
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

import torch
from torch.utils.data import Subset

import tglc_zoo
from tglc_zoo.convert import recalibrate_batchnorm, to_grouped
from tglc_zoo.convert.calibration import dataset_images
from tglc_zoo.data import build_datasets
from tglc_zoo.training.finetune import FinetuneConfig, evaluate, finetune

from .markdown import replace_section

ARMS: tuple[str, ...] = ("gc_block_jacobi", "gc2l_optimal", "gc2l_calibrated", "gc2l_scratch")
ARM_LABELS = {"gc_block_jacobi": "GC, block Jacobi", "gc2l_optimal": "GC-2L, optimal",
              "gc2l_calibrated": "GC-2L, optimal + calibration", "gc2l_scratch": "GC-2L, from scratch"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="the dense (SC) Fashion-MNIST checkpoint")
    p.add_argument("--groups", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-subset", type=int, default=5120, help="training images per epoch (0 = all 60,000)")
    p.add_argument("--test-subset", type=int, default=2000, help="test images (0 = all 10,000)")
    p.add_argument("--calib-images", type=int, default=256, help="calibration images (disjoint from the subset)")
    p.add_argument("--max-iter", type=int, default=10, help="ALS sweeps of the calibrated fit")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/convert_study/study", help="per-arm folders and cached results")
    p.add_argument("--json", default="docs/convert_study.json")
    p.add_argument("--docs", default="docs/convert.md", help="markdown file whose convert_study section is rewritten")
    return p.parse_args(argv)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def build_arm(arm: str, source: torch.nn.Module, groups: int, calib: torch.Tensor, args: argparse.Namespace
              ) -> tuple[torch.nn.Module, dict[str, Any]]:
    info: dict[str, Any] = {}
    if arm == "gc2l_scratch":
        torch.manual_seed(args.seed)
        model = tglc_zoo.create_model(f"{source.pretrained_cfg['architecture']}_gc2l_n{groups}",
                                      num_classes=source.num_classes, in_chans=source.model_args["in_chans"])
        model.pretrained_cfg = {**model.pretrained_cfg, **{k: source.pretrained_cfg[k] for k in
                                                           ("mean", "std", "input_size") if k in source.pretrained_cfg}}
        return model.eval(), info
    conv_type, method = ("gc", "block_jacobi") if arm == "gc_block_jacobi" else ("gc2l", "optimal")
    data = calib if arm == "gc2l_calibrated" else None
    model = to_grouped(source, conv_type, groups, method, data, max_iter=args.max_iter)
    rep = model.conversion_report
    info.update(mean_relative_error=_mean([r.relative_error for r in rep]),
                mean_relative_block_jacobi_error=_mean([r.relative_block_jacobi_error for r in rep]),
                error_metric="input second moment (calibrated)" if data is not None else "kernel Frobenius")
    return model.eval(), info


def bn_recalibrated_top1(model: torch.nn.Module, sets: dict[str, Any]) -> float:
    """Accuracy of a copy of ``model`` whose BatchNorm statistics are re-estimated on the calibration images."""
    return evaluate(recalibrate_batchnorm(copy.deepcopy(model), sets["calib"]), sets["test"])["top1"]


def run_arm(arm: str, groups: int, source: torch.nn.Module, sets: dict[str, Any], args: argparse.Namespace
            ) -> dict[str, Any]:
    torch.manual_seed(args.seed)  # each arm's randomness (augmentation, init) is independent of the order
    t0 = time.time()
    model, info = build_arm(arm, source, groups, sets["calib"], args)
    t_convert = time.time() - t0
    before = evaluate(model, sets["test"])
    info["top1_bn_recalibrated"] = bn_recalibrated_top1(model, sets)
    folder = tglc_zoo.save_pretrained(model, Path(args.out) / f"n{groups}" / arm / "converted",
                                      dataset="fmnist", metrics={"top1": before["top1"]})
    config = FinetuneConfig(epochs=args.epochs, lr=args.lr, body_lr_scale=1.0, batch_size=args.batch_size,
                            seed=args.seed)
    t1 = time.time()
    tuned, after = finetune(folder, sets["train"], sets["test"], num_classes=source.num_classes, config=config,
                            log=print)
    return dict(arm=arm, label=ARM_LABELS[arm], groups=groups, architecture=model.pretrained_cfg["architecture"],
                params=sum(p.numel() for p in model.parameters()), top1_converted=before["top1"],
                loss_converted=before["loss"], top1_finetuned=after["top1"], loss_finetuned=after["loss"],
                seconds_convert=round(t_convert, 1), seconds_finetune=round(time.time() - t1, 1), **info)


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    sub = (f"{cfg['train_subset']:,}-image fixed random subset of the 60,000 training images"
           if cfg["train_subset"] else "all 60,000 training images")
    test = (f"{cfg['test_subset']:,}-image fixed random subset of the test set" if cfg["test_subset"]
            else "the full test set")
    lines = [
        f"Source: `{cfg['source']}` ({results['source']['architecture']}, SC, "
        f"{results['source']['params']:,} parameters), top-1 **{results['source']['top1']:.2f}%** on {test}.",
        "",
        f"Fine-tuning and from-scratch training: {cfg['epochs']} epoch(s) over a {sub}; SGD momentum 0.9, "
        f"weight decay 5e-4, batch {cfg['batch_size']}, lr {cfg['lr']} with cosine decay, the whole network "
        f"trained (`tglc_zoo.training.finetune`), seed {cfg['seed']}. Accuracy (top-1 %) on {test}. Calibration: "
        f"{cfg['calib_images']} training images outside the fine-tuning subset, {cfg['max_iter']} ALS sweeps. "
        "Layer error: mean over converted layers of the fit's relative error (block Jacobi's in brackets), "
        "in the metric of the fit (kernel Frobenius; input second moment when calibrated).",
        "",
        "Column *+ BN re-estimation*: right after conversion, with every BatchNorm's running statistics "
        "re-estimated on the calibration images (`tglc_zoo.convert.recalibrate_batchnorm`, no gradients); "
        "fine-tuning starts from the plain conversion.",
        "",
        f"| N | model | parameters | after conversion | + BN re-estimation | after {cfg['epochs']} epoch(s) "
        "| layer error (block Jacobi) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["arms"]:
        err = (f"{r['mean_relative_error']:.3f} ({r['mean_relative_block_jacobi_error']:.3f})"
               if "mean_relative_error" in r else "—")
        lines.append(f"| {r['groups']} | {r['label']} | {r['params']:,} | {r['top1_converted']:.2f} | "
                     f"{r['top1_bn_recalibrated']:.2f} | {r['top1_finetuned']:.2f} | {err} |")
    env = results["environment"]
    lines += ["", f"Measured on {env['machine']} ({env['threads']} thread(s), torch {env['torch']}); "
                  f"regenerate with `{results['command']}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    source = tglc_zoo.from_pretrained(args.source).eval()
    train, test, _ = build_datasets("fmnist", args.data_dir)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    train_idx = order[:args.train_subset] if args.train_subset else order
    test_idx = (torch.randperm(len(test), generator=torch.Generator().manual_seed(args.seed + 1))[:args.test_subset]
                if args.test_subset else torch.arange(len(test)))
    sets = dict(train=Subset(train, train_idx.tolist()), test=Subset(test, test_idx.tolist()))
    # calibration images: outside the fine-tuning subset (the first ones when it is the whole set)
    sets["calib"] = dataset_images("fmnist", args.calib_images, data_dir=args.data_dir, seed=args.seed,
                                   exclude=args.train_subset or 0)
    src_metrics = evaluate(source, sets["test"])
    print(f"[study] source {args.source}: top1 {src_metrics['top1']:.2f}% on {len(sets['test'])} test images",
          flush=True)
    rows = []
    for groups in args.groups:
        for arm in args.arms:
            cache = out / "results" / f"n{groups}_{arm}.json"
            if cache.exists():
                row = json.loads(cache.read_text())
                if "top1_bn_recalibrated" not in row:  # cached before that column existed: the arm is deterministic
                    row["top1_bn_recalibrated"] = bn_recalibrated_top1(build_arm(arm, source, groups, sets["calib"],
                                                                                 args)[0], sets)
                    cache.write_text(json.dumps(row, indent=2) + "\n")
                rows.append(row)
                print(f"[study] N={groups} {arm}: cached", flush=True)
                continue
            print(f"[study] N={groups} {arm} ...", flush=True)
            row = run_arm(arm, groups, source, sets, args)
            cache.write_text(json.dumps(row, indent=2) + "\n")
            print(f"[study] N={groups} {arm}: converted {row['top1_converted']:.2f}% -> "
                  f"fine-tuned {row['top1_finetuned']:.2f}%", flush=True)
            rows.append(row)
    results = dict(
        command="python -m experiments.convert_study " + " ".join(argv if argv is not None else sys.argv[1:]),
        config={k: v for k, v in vars(args).items() if k not in ("json", "docs", "out")},
        source=dict(architecture=source.pretrained_cfg["architecture"],
                    params=sum(p.numel() for p in source.parameters()), **src_metrics),
        environment=dict(machine=f"{platform.machine()} CPU", threads=args.threads, torch=torch.__version__,
                         python=platform.python_version()),
        arms=rows)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    replace_section(Path(args.docs), "convert_study", table, create_title="Converting dense models")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
