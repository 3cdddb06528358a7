"""Generated sections inside hand-written markdown files (between ``<!-- key:begin -->`` / ``<!-- key:end -->``)."""
from __future__ import annotations

import os
from pathlib import Path


def replace_section(path: Path, key: str, body: str) -> None:
    """Replace the text between the two markers of ``key`` in ``path`` (atomically)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no '{begin}' ... '{end}' section to fill")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{head}{begin}\n{body.strip()}\n{end}{tail}", encoding="utf-8")
    os.replace(tmp, path)
