"""Our parameter counts beside the paper's Tables 1–4 (counted on the meta device: nothing is allocated).

It builds the models through the registry, so it stands above it (floor 4); the paper's tables are data, in
:mod:`tglc_zoo.paper`."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .layers import CONV_LABELS, deploy
from .paper import paper_tables
from .registry import create_model

_CONV_TYPES = {label: conv_type for conv_type, label in CONV_LABELS.items()}


@dataclass(frozen=True)
class ParamRow:
    """One printed count of the paper and ours; ``comparable`` is False for FLGC (nominal in the paper)."""

    table: str
    arch: str
    conv_type: str
    groups: int
    paper_m: float
    decimals: int
    ours: int
    deployed: int | None = None

    @property
    def comparable(self) -> bool:
        return self.conv_type != "flgc"

    @property
    def ok(self) -> bool:
        return round(self.ours / 1e6, self.decimals) == self.paper_m


def count_params(arch: str, conv_type: str, groups: int, num_classes: int) -> int:
    with torch.device("meta"):
        model = create_model(arch, conv_type=conv_type, groups=groups, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def count_deployed_flgc(arch: str, groups: int, num_classes: int) -> int:
    """Parameters of the deployed form of a freshly initialised FLGC model (balanced groups at init)."""
    model = create_model(arch, conv_type="flgc", groups=groups, num_classes=num_classes)
    return sum(p.numel() for p in deploy(model).parameters())


def _rows(table: str, arch: str, entries: dict, num_classes: int, decimals: int,
          with_deployed: bool) -> Iterator[ParamRow]:
    for label, per_n in entries.items():
        conv_type = _CONV_TYPES[label]
        for n, cell in per_n.items():
            groups = int(n)
            ours = count_params(arch, conv_type, groups, num_classes)
            deployed = count_deployed_flgc(arch, groups, num_classes) if conv_type == "flgc" and with_deployed else None
            yield ParamRow(table, arch, conv_type, groups, cell["params_M"], decimals, ours, deployed)


def param_rows(with_deployed: bool = True) -> list[ParamRow]:
    """Every parameter count printed in Tables 1–4, with ours."""
    t = paper_tables()
    rows: list[ParamRow] = []
    rows += _rows("Table 1/3", "wrn28_10", t["table1_table3"]["wrn28_10_cifar"], 10, 2, with_deployed)
    rows += _rows("Table 1/3", "wrn34_2", t["table1_table3"]["wrn34_2_imagenet"], 1000, 2, with_deployed)
    for width, per_n in t["table2_wrn28_w_cifar10_gc2l"].items():
        for n, cell in per_n.items():
            conv_type, groups = ("sc", 1) if n == "1" else ("gc2l", int(n))
            ours = count_params(f"wrn28_{width}", conv_type, groups, 10)
            rows.append(ParamRow("Table 2", f"wrn28_{width}", conv_type, groups, cell["params_M"], 1, ours))
    rows += _rows("Table 4", "mobilenetv2", t["table4_mobilenetv2_imagenet"], 1000, 2, with_deployed)
    return rows


def param_table_markdown(rows: list[ParamRow]) -> str:
    """The comparison as a markdown table (MODEL_CARD.md)."""
    lines = ["| table | model | conv | N | paper (M) | ours | match |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.comparable:
            mark = "✓" if r.ok else "✗"
        else:
            mark = "n/a: training form" + (f"; deployed {r.deployed:,}" if r.deployed is not None else "")
        lines.append(f"| {r.table} | {r.arch} | {r.conv_type} | {r.groups} | {r.paper_m:.{r.decimals}f} | "
                     f"{r.ours:,} | {mark} |")
    return "\n".join(lines)
