"""The study's report from its finished records: ``results.json``, ``results.md``, the two plots, and the
model card's section. Every sentence in them is computed (``verdict.py``, ``targets.py``)."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tglc_zoo.layers import CONV_LABELS
from tglc_zoo.util.atomic import atomic_write, atomic_write_json

from .cells import Cell, CellTable
from .grid import StudyConfig
from .plots import plot_error_vs_groups, plot_training_loss
from .records import RunRecord, finished_results
from .targets import TargetCheck, Targets, target_checks, target_lines
from .verdict import claim_verdict


@dataclass(frozen=True)
class StudyReport:
    """What ``results.json`` holds: the study, how many of its runs finished and where, the cells, the
    verdict's sentences, the targets (none for a study without) and every finished record."""

    study: StudyConfig
    planned_runs: int
    finished_runs: int
    hardware: list[str]
    torch: str
    python: str
    total_train_time_s: float
    cells: CellTable
    verdict: list[str]
    targets: list[TargetCheck]
    runs: list[RunRecord]

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study.to_dict(), "planned_runs": self.planned_runs, "finished_runs": self.finished_runs,
                "hardware": self.hardware, "torch": self.torch, "python": self.python,
                "total_train_time_s": self.total_train_time_s, "cells": self.cells.to_json(),
                "verdict": self.verdict, "targets": [t.to_json() for t in self.targets],
                "runs": [r.to_json() for r in self.runs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyReport:
        return cls(StudyConfig.from_dict(data["study"]), data["planned_runs"], data["finished_runs"],
                   data["hardware"], data["torch"], data["python"], data["total_train_time_s"],
                   CellTable.from_json(data["cells"]), data["verdict"], [TargetCheck(**t) for t in data["targets"]],
                   [RunRecord.from_json(r) for r in data["runs"]])


def build_report(docs: Path, cfg: StudyConfig, targets: Targets | None = None) -> StudyReport:
    """The report of the records in ``docs/runs``; ``targets`` adds the preset's targets, met or missed."""
    plan = cfg.plan()
    records = finished_results(docs / "runs", plan)
    cells = CellTable.from_records(records)
    return StudyReport(
        study=cfg, planned_runs=len(plan), finished_runs=len(records),
        hardware=sorted({r.hardware for r in records}), torch=torch.__version__, python=platform.python_version(),
        total_train_time_s=sum(r.train_time_s for r in records), cells=cells,
        verdict=claim_verdict(cells, cfg.baselines),
        targets=target_checks(cells, targets) if targets is not None else [], runs=records)


def write_report(docs: Path, cfg: StudyConfig, targets: Targets | None = None) -> StudyReport:
    """results.json, results.md and the two plots from the finished records."""
    report = build_report(docs, cfg, targets)
    docs.mkdir(parents=True, exist_ok=True)
    atomic_write_json(docs / "results.json", report.to_json())
    title = f"{cfg.arch} on {'Fashion-MNIST' if cfg.dataset == 'fmnist' else cfg.dataset} ({cfg.epochs} epochs)"
    md = [f"# {title}: test error (%) vs number of groups", "",
          f"{report.finished_runs}/{report.planned_runs} runs finished; cells show mean ± std over seeds "
          "(runs, parameters).", "",
          markdown_table(report.cells, cfg.groups), "", "## What the numbers say", "",
          *[f"- {v}" for v in report.verdict], "",
          *(["## Targets", "", *[f"- {v}" for v in target_lines(report.targets)], ""] if report.targets else []),
          f"Hardware: {', '.join(report.hardware) or 'n/a'}; total training time "
          f"{report.total_train_time_s / 3600:.2f} h.",
          "", "![test error vs N](error_vs_groups.png)", "", "![training loss](training_loss.png)", ""]
    atomic_write(docs / "results.md", "\n".join(md))
    if report.cells:
        plot_error_vs_groups(report.cells, docs / "error_vs_groups.png", title)
        big = max((n for n in cfg.groups if any(r.groups == n for r in report.runs)), default=cfg.groups[-1])
        plot_training_loss(report.runs, big, docs / "training_loss.png", f"{title}: training loss")
    return report


def markdown_table(cells: CellTable, groups: tuple[int, ...]) -> str:
    """Paper-style table: test error (%) mean ± std (seeds) and parameters, one row per conv type."""
    lines = ["| conv | N = 1 | " + " | ".join(f"N = {n}" for n in groups) + " |", "|---|---|" + "---|" * len(groups)]
    sc = cells.sc
    if sc is not None:
        lines.append(f"| SC | {_cell(sc)} |" + " — |" * len(groups))
    for conv_type in ("gc", "gc2l", "shuffle", "flgc"):
        if cells.has(conv_type):
            row = [cells.get(conv_type, n) for n in groups]
            lines.append(f"| {CONV_LABELS[conv_type]} | — | "
                         + " | ".join(_cell(c) if c is not None else "—" for c in row) + " |")
    return "\n".join(lines)


def _cell(c: Cell) -> str:
    pm = f" ± {c.err_std:.2f}" if c.several_seeds else ""
    return f"{c.err_mean:.2f}{pm} ({len(c.errs)}×, {c.params / 1e6:.3f} M)"


def model_card_section(report: StudyReport, docs: Path, card_dir: Path) -> str:
    """The model card's section of the study: the table, the verdict and the targets, the plots and links."""
    rel = os.path.relpath(docs, card_dir)
    lines = [f"{report.finished_runs}/{report.planned_runs} runs finished "
             f"(hardware: {', '.join(report.hardware) or 'n/a'}; total training time "
             f"{report.total_train_time_s / 3600:.2f} h). Test error (%) after the last epoch, mean ± std over "
             "seeds (number of runs, parameters):", "", markdown_table(report.cells, report.study.groups), "",
             "What the numbers say (computed by the script):", "", *[f"- {v}" for v in report.verdict], "",
             *(["Targets (computed by the script):", "", *[f"- {v}" for v in target_lines(report.targets)], ""]
               if report.targets else []),
             f"![test error vs N]({rel}/error_vs_groups.png)", "", f"![training loss]({rel}/training_loss.png)", "",
             f"Full results: [{rel}/results.md]({rel}/results.md), [{rel}/results.json]({rel}/results.json)."]
    return "\n".join(lines)
