"""Generated sections inside hand-written markdown files (between ``<!-- key:begin -->`` / ``<!-- key:end -->``)."""
from __future__ import annotations

from pathlib import Path

from tglc_zoo.util.atomic import atomic_write


def replace_section(path: Path, key: str, body: str) -> None:
    """Replace the text between the two markers of ``key`` in ``path`` (atomically)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no '{begin}' ... '{end}' section to fill")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write(path, f"{head}{begin}\n{body.strip()}\n{end}{tail}")
