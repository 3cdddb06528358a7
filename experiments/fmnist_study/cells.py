"""Aggregation: the finished records of the grid as cells (one conv type at one N) over seeds.

Errors are in percentage points (records hold fractions). In ``results.json`` the cells are written as
``{conv_type: {str(N): {err_mean, err_std, errs, seeds, params, train_time_s}}}``, which ``CellTable``
writes and reads back.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tglc_zoo.layers import CONV_LABELS

from .records import RunRecord


@dataclass(frozen=True)
class Cell:
    """One conv type at one N: the final test error (points) of each seed, the parameters of its model and
    the mean training time of its runs."""

    conv_type: str
    groups: int
    errs: tuple[float, ...]
    seeds: tuple[int, ...]
    params: int
    train_time_s: float

    @property
    def err_mean(self) -> float:
        return statistics.fmean(self.errs)

    @property
    def err_std(self) -> float:
        """The sample standard deviation over seeds; 0 for one seed."""
        return statistics.stdev(self.errs) if len(self.errs) > 1 else 0.0

    @property
    def several_seeds(self) -> bool:
        return len(self.errs) > 1

    def to_json(self) -> dict[str, Any]:
        return {"err_mean": self.err_mean, "err_std": self.err_std, "errs": list(self.errs),
                "seeds": list(self.seeds), "params": self.params, "train_time_s": self.train_time_s}

    @classmethod
    def from_json(cls, conv_type: str, groups: int, data: dict[str, Any]) -> Cell:
        return cls(conv_type, groups, tuple(data["errs"]), tuple(data["seeds"]), data["params"], data["train_time_s"])


@dataclass(frozen=True)
class CellTable:
    """Every cell of a study, ordered by conv type (the order of ``tglc_zoo.layers.CONV_SPECS``), then N."""

    cells: tuple[Cell, ...]

    @classmethod
    def from_records(cls, records: Iterable[RunRecord]) -> CellTable:
        by_cell: dict[tuple[str, int], list[RunRecord]] = {}
        for r in records:
            by_cell.setdefault((r.conv_type, r.groups), []).append(r)
        order = sorted(by_cell, key=lambda key: (list(CONV_LABELS).index(key[0]), key[1]))
        return cls(tuple(Cell(conv_type, n, tuple(r.err_points for r in by_cell[conv_type, n]),
                              tuple(r.seed for r in by_cell[conv_type, n]), by_cell[conv_type, n][0].params,
                              statistics.fmean(r.train_time_s for r in by_cell[conv_type, n]))
                         for conv_type, n in order))

    @classmethod
    def from_json(cls, data: dict[str, dict[str, dict[str, Any]]]) -> CellTable:
        return cls(tuple(Cell.from_json(conv_type, int(n), cell)
                         for conv_type, per_n in data.items() for n, cell in per_n.items()))

    def to_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for c in self.cells:
            out.setdefault(c.conv_type, {})[str(c.groups)] = c.to_json()
        return out

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    def get(self, conv_type: str, groups: int) -> Cell | None:
        return next((c for c in self.cells if c.conv_type == conv_type and c.groups == groups), None)

    def has(self, conv_type: str) -> bool:
        return any(c.conv_type == conv_type for c in self.cells)

    def groups_of(self, conv_type: str) -> list[int]:
        """The N at which ``conv_type`` has a cell, ascending."""
        return sorted(c.groups for c in self.cells if c.conv_type == conv_type)

    def err(self, conv_type: str, groups: int) -> float:
        """The mean error of a cell that exists."""
        cell = self.get(conv_type, groups)
        if cell is None:
            raise KeyError(f"no cell {conv_type} at N = {groups}")
        return cell.err_mean

    @property
    def sc(self) -> Cell | None:
        return self.get("sc", 1)

    def seed_stds(self) -> list[float]:
        """The seed-to-seed standard deviation of every cell run with several seeds."""
        return [c.err_std for c in self.cells if c.several_seeds]

    def seed_noise(self) -> float | None:
        """Pooled seed-to-seed standard deviation (points) over the cells run with several seeds; None if none."""
        stds = self.seed_stds()
        return statistics.fmean(s ** 2 for s in stds) ** 0.5 if stds else None


def recovery(sc: float, gc: float, gc2l: float) -> float | None:
    """The share of GC's loss against SC that GC-2L wins back: (GC-2L − GC) / (SC − GC). The same for
    accuracies and for errors; None when GC and SC are level."""
    return (gc2l - gc) / (sc - gc) if sc != gc else None
