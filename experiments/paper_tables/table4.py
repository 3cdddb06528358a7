#!/usr/bin/env python3
"""Table 4: MobileNetV2 on ImageNet with SC, GC, Shuffle, FLGC and GC-2L for N = 2, 4, 8 (ImageNet recipe)."""
from __future__ import annotations

import argparse

from .launch import PlannedRun, common_parser, main


def build(args: argparse.Namespace) -> list[PlannedRun]:
    names = ["mobilenetv2"] + [f"mobilenetv2_{c}_n{n}" for c in ("gc", "shuffle", "flgc", "gc2l") for n in (2, 4, 8)]
    return [PlannedRun(f"{m}-imagenet", ("--model", m, "--dataset", "imagenet", "--data-dir", args.imagenet_dir,
                                         "--recipe", "imagenet", "--seed", str(args.seed), "--amp", "bf16",
                                         "--channels-last", "--workers", "8", "--no-progress",
                                         "--output", f"{args.runs_dir}/{m}-imagenet",
                                         "--publish", f"{args.publish_dir}/{m}-imagenet"))
            for m in names]


if __name__ == "__main__":
    parser = common_parser(__doc__)
    parser.add_argument("--imagenet-dir", default="data/imagenet")
    raise SystemExit(main("Table 4", build, parser))
