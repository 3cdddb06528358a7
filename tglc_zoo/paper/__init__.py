"""The paper's tables (Lee, Park, Lee: Two-level group convolution, Neural Networks 154, 2022), shipped as data."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def paper_tables() -> dict[str, Any]:
    """Tables 1–4 and the training recipes, exactly as printed in the paper."""
    return json.loads(resources.files(__package__).joinpath("tables.json").read_text(encoding="utf-8"))


def paper_results_markdown() -> str:
    """The paper's error rates (Tables 1/3 and 4) as markdown, labelled as the paper's."""
    t = paper_tables()
    out = []
    specs = [("WRN-28-10, CIFAR-10 test error (%)", t["table1_table3"]["wrn28_10_cifar"], "err_cifar10"),
             ("WRN-28-10, CIFAR-100 test error (%)", t["table1_table3"]["wrn28_10_cifar"], "err_cifar100"),
             ("WRN-34-2, ImageNet top-1 error (%)", t["table1_table3"]["wrn34_2_imagenet"], "err_imagenet"),
             ("MobileNetV2, ImageNet top-1 error (%)", t["table4_mobilenetv2_imagenet"], "err_imagenet")]
    for title, table, key in specs:
        ns = sorted({int(n) for per_n in table.values() for n in per_n if n != "1"})
        out += [f"**{title} — as printed in the paper**", "",
                "| conv | " + " | ".join(f"N = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for label, per_n in table.items():
            if "1" in per_n:
                out.append(f"| {label} (N = 1) | {per_n['1'][key]:.2f} |" + " |" * (len(ns) - 1))
            else:
                out.append(f"| {label} | " + " | ".join(f"{per_n[str(n)][key]:.2f}" for n in ns) + " |")
        out.append("")
    return "\n".join(out)
