"""What a finished run of the study leaves: one small JSON record, ``<records>/<run_id>.json``.

Records are meant to be committed (``docs/<study>/runs/``): a run with a record is finished and is never
trained again. They are read as they were written; the fields below are the committed files' keys, in
their order.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .grid import RunSpec


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its place in the grid, its final and per-epoch numbers, where and when it ran.
    ``test_acc``/``test_err`` are fractions of the test set; ``train_loss`` and ``test_err_curve`` hold one
    value per epoch."""

    arch: str
    conv_type: str
    groups: int
    seed: int
    model: str
    run_id: str
    test_acc: float
    test_err: float
    best_test_acc: float
    train_loss: tuple[float, ...]
    test_err_curve: tuple[float, ...]
    epochs: int
    train_time_s: float
    params: int
    hardware: str
    finished_at: str

    @property
    def err_points(self) -> float:
        """The final test error in percentage points (what the report speaks in)."""
        return 100.0 * self.test_err

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str = "record") -> RunRecord:
        names = [f.name for f in fields(cls)]
        if set(data) != set(names):
            raise ValueError(f"{origin}: a run record has the keys {names}; missing {sorted(set(names) - set(data))}, "
                             f"unexpected {sorted(set(data) - set(names))}")
        values = dict(data, train_loss=tuple(data["train_loss"]), test_err_curve=tuple(data["test_err_curve"]))
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The record as its JSON file holds it (the same keys, in the same order)."""
        out = asdict(self)
        out["train_loss"], out["test_err_curve"] = list(self.train_loss), list(self.test_err_curve)
        return out


def record_path(records_dir: Path, spec: RunSpec) -> Path:
    return records_dir / f"{spec.run_id}.json"


def read_record(path: Path) -> RunRecord:
    return RunRecord.from_json(json.loads(path.read_text()), origin=str(path))


def finished_results(records_dir: Path, plan: Iterable[RunSpec]) -> list[RunRecord]:
    """The records of the planned runs that have finished, in plan order."""
    return [read_record(path) for path in (record_path(records_dir, spec) for spec in plan) if path.is_file()]
