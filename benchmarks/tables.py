"""Writing benchmark results, for every benchmark: rows as CSV, results as JSON, and tables (markdown for
docs, aligned plain text for the terminal). Files are written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tglc_zoo.util.atomic import atomic_write

__all__ = ["write_csv", "write_json", "markdown_table", "text_table", "format_value"]


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """One line per row; the columns are every key of the rows in first-seen order (a row without a key leaves
    its cell empty)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """``obj`` as JSON, one-space indent, values JSON cannot hold written as ``str(value)``, a final newline."""
    atomic_write(path, json.dumps(obj, indent=1, default=str) + "\n")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: the header, the separator, and one line per row (each cell as ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_value(v: Any) -> str:
    """A cell of a text table: ``-`` for None, floats with 3 decimals (1 from 100 on), anything else as ``str``."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The ``columns`` of ``rows`` as left-aligned plain-text columns under a header and a rule."""
    cells = [[format_value(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
