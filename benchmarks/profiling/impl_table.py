"""Turn measured layer rows into the GC-2L implementation table that ``impl="auto"`` reads."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tglc_zoo.layers.gc2l_impl import KERNEL_IMPLS, TABLE_PATH

from ..tables import write_json

KEY_FIELDS = ("device", "channels_last", "training", "in_channels", "out_channels", "kernel_size", "stride",
              "groups", "hw")


MAX_FOREIGN_LOAD = 0.2
"""Cores other processes may have used during a point's timing for it to enter the table (``foreign_load``)."""


def best_impls(rows: Sequence[dict[str, Any]], dtype: str = "fp32") -> list[dict[str, Any]]:
    """For every measured (shape, N, layout, mode): the fastest GC-2L implementation and its margin."""
    points: dict[tuple[Any, ...], dict[str, float]] = {}
    meta: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        if r["dtype"] != dtype or not r["conv"].startswith("gc2l:") or r["conv"] == "gc2l:auto":
            continue
        impl = r["conv"].split(":", 1)[1]
        if impl not in KERNEL_IMPLS:
            continue
        key = (r["device"], r["layout"] == "channels_last", r["mode"] == "fwdbwd", r["in_channels"],
               r["out_channels"], r["kernel_size"], r["stride"], r["groups"], r["hw_out"])
        points.setdefault(key, {})[impl] = r["time_ms"]
        meta[key] = r
    out = []
    for key, times in points.items():
        ranked = sorted(times, key=times.__getitem__)
        row = dict(zip(KEY_FIELDS, key))
        row.update(impl=ranked[0], time_ms={k: round(v, 3) for k, v in times.items()},
                   load_average=meta[key].get("load_average"), foreign_load=meta[key].get("foreign_load"))
        out.append(row)
    return out


def quiet_rows(rows: Sequence[dict[str, Any]], max_foreign: float = MAX_FOREIGN_LOAD
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(kept, refused)``: rows measured while other processes used at most ``max_foreign`` cores; a row
    without the measurement (older results) is refused."""
    kept = [r for r in rows if r.get("foreign_load") is not None and r["foreign_load"] <= max_foreign]
    return kept, [r for r in rows if r not in kept]


def merge_into_table(new_rows: Sequence[dict[str, Any]], source: str, path: Path = TABLE_PATH) -> int:
    """Replace the table's rows for the same keys by ``new_rows``; keep the others. Returns the row count."""
    data = json.loads(path.read_text()) if path.exists() else {}
    rows = {tuple(r[k] for k in KEY_FIELDS): r for r in data.get("rows", [])}
    for r in new_rows:
        rows[tuple(r[k] for k in KEY_FIELDS)] = r
    sources = [s for s in data.get("sources", []) if s != source] + [source]
    ordered = sorted(rows.values(), key=lambda r: tuple(str(r[k]) for k in KEY_FIELDS))
    write_json(path, {
        "about": "Fastest GC-2L implementation per measured shape (python -m benchmarks.bench --write-impl-table). "
                 "Read by tglc_zoo.layers.gc2l_impl for impl='auto'; hw = output pixels per image.",
        "sources": sources, "rows": ordered})
    return len(ordered)
