#!/usr/bin/env python3
"""Table 2: WRN-28-{40,60,80} with GC-2L on CIFAR-10, N = 2 and 4 groups on N GPUs with the
group-parallel engine (tglc_zoo.distributed, ``--parallel group``), and the SC (N = 1) baselines."""
from __future__ import annotations

import argparse

from .launch import PlannedRun, common_parser, main


def build(args: argparse.Namespace) -> list[PlannedRun]:
    runs = []
    for width in (40, 60, 80):
        base = ["--dataset", "cifar10", "--data-dir", args.cifar10_dir, "--recipe", "cifar", "--seed", str(args.seed),
                "--workers", "8", "--no-progress", "--amp", "bf16", "--channels-last"]
        sc = f"wrn28_{width}"
        note = ("paper: SC on 1 GPU" if width == 40 else
                f"paper: SC with naive model parallelism on {2 if width == 60 else 4} GPUs; "
                "tglc_zoo runs SC on one GPU "
                "(needs a GPU that holds the whole model)")
        runs.append(PlannedRun(f"{sc}-cifar10", ("--model", sc, *base, "--output", f"{args.runs_dir}/{sc}-cifar10",
                                                  "--publish", f"{args.publish_dir}/{sc}-cifar10"), 1, note))
        for n in (2, 4):
            model = f"wrn28_{width}_gc2l_n{n}"
            runs.append(PlannedRun(f"{model}-cifar10", ("--model", model, *base, "--group-parallel",
                                                         "--output", f"{args.runs_dir}/{model}-cifar10",
                                                         "--publish", f"{args.publish_dir}/{model}-cifar10"), n,
                                   f"group k of every layer on GPU k ({n} GPUs)"))
    return runs


if __name__ == "__main__":
    parser = common_parser(__doc__)
    parser.add_argument("--cifar10-dir", default="data/cifar10")
    raise SystemExit(main("Table 2", build, parser))
