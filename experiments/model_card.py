"""Regenerate MODEL_CARD.md's generated sections that come from the package: the parameter-count table
(every count of the paper's Tables 1-4 beside ours) and the paper's error rates.

    python -m experiments.model_card [--model-card MODEL_CARD.md] [--no-deployed]

(The Fashion-MNIST study section is written by ``python -m experiments.fmnist_study``.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tglc_zoo.paper import paper_results_markdown
from tglc_zoo.paper.param_counts import param_rows, param_table_markdown

from .markdown import replace_section

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-card", type=Path, default=REPO / "MODEL_CARD.md")
    p.add_argument("--no-deployed", action="store_true", help="skip building FLGC models to count their deployed form")
    args = p.parse_args(argv)
    rows = param_rows(with_deployed=not args.no_deployed)
    replace_section(args.model_card, "param-table", param_table_markdown(rows))
    replace_section(args.model_card, "paper-results", paper_results_markdown())
    print(f"wrote the param-table and paper-results sections of {args.model_card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
