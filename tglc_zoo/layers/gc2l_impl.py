"""Which GC-2L implementation to run for a shape: a rule read from a committed table of measurements.

``gc2l_impl_table.json`` (next to this file) holds, per device type, the fastest implementation that
``python -m benchmarks.bench --write-impl-table`` measured for each benchmarked layer shape, separately for
training (forward+backward) and inference (forward) and for channels_last / contiguous inputs. For a
shape that is not in the table the nearest measured shape of the same kind (same kernel size, stride
and N; nearest in log channels and log pixels) decides. A device type with no measurements falls back
to :data:`FALLBACK`. Nothing is timed at run time, so a model computes the same way on every machine
of a device type, and the choice is static under ``torch.compile``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("gc2l_impl_table.json")
KERNEL_IMPLS: tuple[str, ...] = ("split", "addmm", "fused", "dense")
FALLBACK = "addmm"


@dataclass(frozen=True)
class ShapeKey:
    """What the choice depends on. ``hw`` is the number of output pixels per image."""

    device: str
    channels_last: bool
    training: bool
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    groups: int
    hw: int

    def kind(self) -> tuple[Any, ...]:
        return (self.device, self.channels_last, self.training, self.kernel_size, self.stride, self.groups)

    def distance(self, other: ShapeKey) -> float:
        return (abs(math.log(self.in_channels / other.in_channels))
                + abs(math.log(self.out_channels / other.out_channels))
                + 0.5 * abs(math.log(max(self.hw, 1) / max(other.hw, 1))))


def _row_key(row: dict[str, Any]) -> ShapeKey:
    return ShapeKey(str(row["device"]), bool(row["channels_last"]), bool(row["training"]), int(row["in_channels"]),
                    int(row["out_channels"]), int(row["kernel_size"]), int(row["stride"]), int(row["groups"]),
                    int(row["hw"]))


@lru_cache(maxsize=1)
def load_table(path: Path | None = None) -> tuple[tuple[ShapeKey, str], ...]:
    path = TABLE_PATH if path is None else path
    if not path.exists():
        return ()
    data = json.loads(path.read_text())
    rows = []
    for row in data.get("rows", []):
        impl = row["impl"]
        if impl not in KERNEL_IMPLS:
            raise ValueError(f"{path}: unknown impl {impl!r} in row {row}; valid: {list(KERNEL_IMPLS)}")
        rows.append((_row_key(row), impl))
    return tuple(rows)


@lru_cache(maxsize=4096)
def choose_impl(key: ShapeKey) -> str:
    """The measured-fastest implementation for ``key`` (exact row, else nearest of the same kind)."""
    best, best_d = FALLBACK, math.inf
    for row_key, impl in load_table():
        if row_key.kind() != key.kind():
            continue
        d = row_key.distance(key)
        if d < best_d:
            best, best_d = impl, d
    return best
