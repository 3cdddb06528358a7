"""Generated sections inside hand-written markdown files (between ``<!-- key:begin -->`` / ``<!-- key:end -->``)."""
from __future__ import annotations

from pathlib import Path

from tglc_zoo.util.atomic import atomic_write


def replace_section(path: Path, key: str, body: str, *, create_title: str | None = None) -> None:
    """Replace the text between the two markers of ``key`` in ``path`` (atomically).

    With ``create_title``, a missing file is created under that ``# title`` and a file without the
    markers gets the section appended; without it, both are errors.
    """
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    if create_title is not None and not path.exists():
        text = f"# {create_title}\n"
    else:
        text = path.read_text(encoding="utf-8")
    if create_title is not None and (begin not in text or end not in text):
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no '{begin}' ... '{end}' section to fill")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write(path, f"{head}{begin}\n{body.strip()}\n{end}{tail}")
