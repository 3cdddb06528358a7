#!/usr/bin/env python3
"""Tables 1 and 3: WRN-28-10 on CIFAR-10/100 and WRN-34-2 on ImageNet with SC, GC, GC-2L, Shuffle and
FLGC for N = 2, 4, 8, 16 (the paper's recipes; one GPU per run)."""
from __future__ import annotations

import argparse

from .launch import PlannedRun, common_parser, main

CONVS = ("gc", "gc2l", "shuffle", "flgc")
GROUPS = (2, 4, 8, 16)


def build(args: argparse.Namespace) -> list[PlannedRun]:
    runs = []
    setups = [("wrn28_10", "cifar10", "cifar", args.cifar10_dir), ("wrn28_10", "cifar100", "cifar", args.cifar100_dir),
              ("wrn34_2", "imagenet", "imagenet", args.imagenet_dir)]
    for arch, dataset, recipe, data_dir in setups:
        names = [arch] + [f"{arch}_{c}_n{n}" for c in CONVS for n in GROUPS]
        for model in names:
            tag = f"{model}-{dataset}"
            train_args = ["--model", model, "--dataset", dataset, "--data-dir", data_dir, "--recipe", recipe,
                          "--seed", str(args.seed), "--output", f"{args.runs_dir}/{tag}",
                          "--publish", f"{args.publish_dir}/{tag}", "--workers", "8", "--no-progress"]
            if dataset == "imagenet":
                train_args += ["--amp", "bf16", "--channels-last"]
            runs.append(PlannedRun(tag, tuple(train_args)))
    return runs


if __name__ == "__main__":
    parser = common_parser(__doc__)
    parser.add_argument("--cifar10-dir", default="data/cifar10")
    parser.add_argument("--cifar100-dir", default="data/cifar100")
    parser.add_argument("--imagenet-dir", default="data/imagenet")
    raise SystemExit(main("Tables 1 and 3", build, parser))
