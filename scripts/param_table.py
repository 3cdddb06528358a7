#!/usr/bin/env python
"""Print every parameter count of the paper's Tables 1–4 beside ours; exit 1 on any mismatch.

FLGC rows are printed for information only: the paper prints GC's count for FLGC, while the FLGC
training form holds a dense weight plus assignment logits (our count) and its deployed form holds
GC's count only when the learned groups are balanced (deployed count, at initialisation).

Usage: python scripts/param_table.py [--no-deployed] [--model-card MODEL_CARD.md]
"""
from __future__ import annotations

import argparse
import sys

from pathlib import Path

from tglc_zoo.paper import paper_results_markdown
from tglc_zoo.paper.param_counts import ParamRow, param_rows
from tglc_zoo.studies.markdown import replace_section


def markdown(rows: list[ParamRow]) -> str:
    lines = ["| table | model | conv | N | paper (M) | ours | match |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.comparable:
            mark = "✓" if r.ok else "✗"
        else:
            mark = "n/a: training form" + (f"; deployed {r.deployed:,}" if r.deployed is not None else "")
        lines.append(f"| {r.table} | {r.arch} | {r.conv_type} | {r.groups} | {r.paper_m:.{r.decimals}f} | "
                     f"{r.ours:,} | {mark} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-deployed", action="store_true", help="skip building FLGC models to count their deployed form")
    parser.add_argument("--model-card", type=Path, default=None,
                        help="also write the table (and the paper's error rates) into this file's generated sections")
    args = parser.parse_args(argv)
    rows = param_rows(with_deployed=not args.no_deployed)
    if args.model_card:
        replace_section(args.model_card, "param-table", markdown(rows))
        replace_section(args.model_card, "paper-results", paper_results_markdown())
    print(f"{'table':<10} {'model':<12} {'conv':<8} {'N':>3} {'paper (M)':>10} {'ours':>15} {'ours (M)':>10}  match")
    bad = 0
    for r in rows:
        ours_m = f"{round(r.ours / 1e6, r.decimals):.{r.decimals}f}"
        if r.comparable:
            mark = "✓" if r.ok else "✗"
            bad += not r.ok
        else:
            deployed = f", deployed {r.deployed:,}" if r.deployed is not None else ""
            mark = f"n/a (training form{deployed}; paper prints GC's count)"
        print(f"{r.table:<10} {r.arch:<12} {r.conv_type:<8} {r.groups:>3} {r.paper_m:>10.{r.decimals}f} {r.ours:>15,} {ours_m:>10}  {mark}")
    checked = sum(r.comparable for r in rows)
    print(f"\n{checked - bad}/{checked} comparable counts match the paper")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
