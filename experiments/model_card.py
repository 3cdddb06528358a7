"""Regenerate the generated sections that come from the package: MODEL_CARD.md's parameter-count table
(every count of the paper's Tables 1-4 beside ours) and the paper's error rates, and README.md's table of
pretrained tags (from the weights manifest).

    python -m experiments.model_card [--model-card MODEL_CARD.md] [--no-deployed]

(The Fashion-MNIST study section is written by ``python -m experiments.fmnist_study``.)
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from tglc_zoo.paper import paper_results_markdown
from tglc_zoo.param_counts import param_rows, param_table_markdown

from .markdown import replace_section

REPO = Path(__file__).resolve().parents[1]


def tags_table() -> str:
    """The shipped tags: dataset, measured top-1 (and the cell's spread over seeds), parameters, Hub repo."""
    from tglc_zoo.checkpoint import read_header
    from tglc_zoo.weights import load_manifest

    lines = ["| tag | dataset | top-1 (%) | cell mean ± std (seeds) | parameters | Hub repo |",
             "|---|---|---|---|---|---|"]
    for tag, e in sorted(load_manifest(include_unavailable=True).items()):
        weights = Path(e["file"]) / "model.safetensors" if e.get("file") else None
        params = "—"
        if weights is not None and weights.is_file():
            shapes = [info.shape for k, info in read_header(weights).tensors.items()
                      if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
            params = f"{sum(math.prod(s) for s in shapes):,}"
        cell = e.get("cell") or {}
        spread = (f"{cell['top1_mean']:.2f} ± {cell['top1_std']:.2f} ({len(cell['seeds'])})" if cell else "—")
        lines.append(f"| `{tag}` | {e['dataset']} | {e['metrics']['top1']:.2f} | {spread} | {params} | "
                     f"[{e['hf_hub_id']}](https://huggingface.co/{e['hf_hub_id']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-card", type=Path, default=REPO / "MODEL_CARD.md")
    p.add_argument("--readme", type=Path, default=REPO / "README.md")
    p.add_argument("--no-deployed", action="store_true", help="skip building FLGC models to count their deployed form")
    args = p.parse_args(argv)
    rows = param_rows(with_deployed=not args.no_deployed)
    replace_section(args.model_card, "param-table", param_table_markdown(rows))
    replace_section(args.model_card, "paper-results", paper_results_markdown())
    replace_section(args.readme, "pretrained-tags", tags_table())
    print(f"wrote the param-table and paper-results sections of {args.model_card} and the tags table of "
          f"{args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
