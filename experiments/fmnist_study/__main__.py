#!/usr/bin/env python
"""The paper's claim on real data: test error vs N for SC, GC, GC-2L, Shuffle and FLGC on Fashion-MNIST.

Resumable: finished runs are kept and skipped, an interrupted run resumes from its last checkpoint.
Spread it over several sessions with --max-runs; --report-only rebuilds the results from what exists.

    python -m experiments.fmnist_study                   # the whole grid (hours on 2 CPU cores)
    python -m experiments.fmnist_study --max-runs 4      # the next 4 unfinished runs, then report
    python -m experiments.fmnist_study --report-only     # table, plots and JSON from finished runs

Writes runs under --out (default runs/fmnist_study) and the report under --docs (default
docs/fmnist_study): one record per finished run in runs/<run_id>.json (commit these: they are what
makes a run "finished"), results.json, results.md, error_vs_groups.png, training_loss.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from tglc_zoo.util.atomic import atomic_write_json

from ..markdown import replace_section
from .grid import StudyConfig
from .presets import PRESETS, TARGETS
from .records import finished_results, record_path
from .report import markdown_table, model_card_section, write_report
from .run import run_one
from .targets import target_lines

REPO_ROOT = Path(__file__).resolve().parents[2]


DEFAULT_DIRS = {"full": ("runs/fmnist_study_full", "docs/fmnist_study_full"),
                "short": ("runs/fmnist_study", "docs/fmnist_study")}
# the model card holds one generated section per preset: the decisive study and the first, short one
CARD_SECTIONS = {"full": "fmnist-study-full", "short": "fmnist-study"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default="full")
    preset = pre.parse_known_args(argv)[0].preset
    d = PRESETS[preset]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="full",
                   help="the study's grid and recipe: 'full' (60k images, 8 epochs, 3 seeds at N = 8, 16) or "
                        "'short' (the first study: 20k images, 5 epochs); options below override it")
    p.add_argument("--out", default=DEFAULT_DIRS[preset][0], help="study folder (runs and logs)")
    p.add_argument("--docs", default=DEFAULT_DIRS[preset][1], help="where the report goes")
    p.add_argument("--arch", default=d.arch)
    p.add_argument("--dataset", default=d.dataset, help="fmnist (the study); digits for a quick smoke run")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr-milestones", type=int, nargs="*", default=list(d.lr_milestones))
    p.add_argument("--train-subset", type=int, default=d.train_subset, help="0 = the full 60k training set")
    p.add_argument("--groups", type=int, nargs="+", default=list(d.groups))
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    p.add_argument("--extra-seeds", type=int, nargs="*", default=list(d.extra_seeds))
    p.add_argument("--device", default=d.device)
    p.add_argument("--amp", default=None, choices=["bf16", "fp16"])
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=d.channels_last)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-runs", type=int, default=None, help="train at most this many unfinished runs")
    p.add_argument("--shard", default="0/1", metavar="I/K",
                   help="train only the runs whose place in the plan is I modulo K (K processes side by side)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ship", action="store_true",
                   help="publish the median (--select) run of SC and of each conv type at --ship-groups to "
                        "hub/<model>.<tag> and the package's weights manifest, as runs finish; the other "
                        "<model>.<tag> entries of the dataset (cells this study does not ship) are removed")
    p.add_argument("--ship-groups", type=int, nargs="*", default=[8, 16] if preset == "full" else [4, 8])
    p.add_argument("--tag", default="fmnist", help="pretrained tag of shipped checkpoints")
    p.add_argument("--select", choices=["median", "best"], default="median" if preset == "full" else "best",
                   help="which seed of a cell ships")
    p.add_argument("--repo-root", type=Path, default=REPO_ROOT, help="shipped folders go to REPO_ROOT/hub/")
    p.add_argument("--manifest", type=Path, default=None, help="weights manifest to update (default: the package's)")
    p.add_argument("--model-card", type=Path, default=REPO_ROOT / "MODEL_CARD.md",
                   help="fill this file's section of the preset (fmnist-study-full or fmnist-study) with the "
                        "results ('' to skip)")
    return p.parse_args(argv)


def study_config(args: argparse.Namespace) -> StudyConfig:
    return dataclasses.replace(
        PRESETS[args.preset], arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
        lr_milestones=tuple(args.lr_milestones), train_subset=args.train_subset or None, groups=tuple(args.groups),
        seeds=tuple(args.seeds), extra_seeds=tuple(args.extra_seeds), device=args.device, amp=args.amp,
        channels_last=args.channels_last)


def check_same_config(docs: Path, cfg: StudyConfig) -> None:
    """A study (its committed records and its run folders) holds one recipe: refuse to mix recipes."""
    path = docs / "study.json"
    saved = json.loads(path.read_text()) if path.is_file() else None
    # where it runs is not what it computes: data location and device may differ between sessions
    current = {k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in ("data_dir", "device")}
    saved = {k: v for k, v in saved.items() if k not in ("data_dir", "device")} if saved is not None else None
    if saved is not None and saved != current:
        diff = {k: (saved.get(k), current.get(k)) for k in current if saved.get(k) != current.get(k)}
        raise SystemExit(f"error: {docs} holds a study with another configuration {diff}; "
                         "use another --docs/--out or the same options")
    atomic_write_json(path, current)


def ship_finished(args: argparse.Namespace, cfg: StudyConfig, study_dir: Path, docs: Path,
                  log: Callable[[str], None]) -> None:
    from tglc_zoo.data import get_dataset_info

    from .ship import MANIFEST_PATH, ship

    cells = {("sc", 1)} | {(c, n) for c in cfg.conv_types for n in args.ship_groups}
    records = finished_results(docs / "runs", cfg.plan())
    info = get_dataset_info(cfg.dataset)
    ship(records, cells, study_dir, args.repo_root, tag=args.tag, dataset=info.hub_id or info.name,
         dataset_name="Fashion-MNIST" if cfg.dataset == "fmnist" else cfg.dataset, recipe=cfg.recipe_text(),
         select=args.select,
         manifest_path=args.manifest or MANIFEST_PATH, prune=True, log=log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = study_config(args)
    study_dir, docs = Path(args.out), Path(args.docs)
    check_same_config(docs, cfg)
    study_dir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        shard, shards = (int(v) for v in args.shard.split("/"))
        if not 0 <= shard < shards:
            raise SystemExit(f"error: --shard {args.shard!r}: expected I/K with 0 <= I < K")
        todo = [s for i, s in enumerate(cfg.plan())
                if i % shards == shard and not record_path(docs / "runs", s).is_file()]
        if args.max_runs is not None:
            todo = todo[:args.max_runs]
        log_path = study_dir / ("study.log" if shards == 1 else f"study.shard{shard}of{shards}.log")
        with log_path.open("a") as log_file:
            def log(msg: str) -> None:
                log_file.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
                log_file.flush()
                if args.no_progress:
                    print(msg, flush=True)

            bar = tqdm(todo, desc="study", unit="run", disable=args.no_progress)
            for spec in bar:
                bar.set_postfix_str(spec.run_id)
                rec = run_one(spec, cfg, study_dir, docs / "runs", progress=not args.no_progress, log=log)
                log(f"[study] {spec.run_id}: test error {rec.err_points:.2f}% in {rec.train_time_s:.0f}s")
                if args.ship:
                    ship_finished(args, cfg, study_dir, docs, log)
    if args.ship:
        ship_finished(args, cfg, study_dir, docs, print)
    report = write_report(docs, cfg, TARGETS.get(args.preset))
    if str(args.model_card) and args.model_card.is_file():
        section = model_card_section(report, docs, args.model_card.parent)
        replace_section(args.model_card, CARD_SECTIONS[args.preset], section)
    print(markdown_table(report.cells, cfg.groups))
    for line in [*report.verdict, *target_lines(report.targets)]:
        print("-", line)
    print(f"{report.finished_runs}/{report.planned_runs} runs finished; report in {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
