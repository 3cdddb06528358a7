#!/usr/bin/env python
"""Print every parameter count of the paper's Tables 1–4 beside ours; exit 1 on any mismatch.

FLGC rows are printed for information only: the paper prints GC's count for FLGC, while the FLGC
training form holds a dense weight plus assignment logits (our count) and its deployed form holds
GC's count only when the learned groups are balanced (deployed count, at initialisation).

Usage: python scripts/param_table.py [--no-deployed]   (MODEL_CARD.md's copy: python -m experiments.model_card)
"""
from __future__ import annotations

import argparse
import sys

from tglc_zoo.param_counts import param_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-deployed", action="store_true",
                        help="skip building FLGC models to count their deployed form")
    args = parser.parse_args(argv)
    rows = param_rows(with_deployed=not args.no_deployed)
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
        print(f"{r.table:<10} {r.arch:<12} {r.conv_type:<8} {r.groups:>3} {r.paper_m:>10.{r.decimals}f} "
              f"{r.ours:>15,} {ours_m:>10}  {mark}")
    checked = sum(r.comparable for r in rows)
    print(f"\n{checked - bad}/{checked} comparable counts match the paper")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
