"""The one "did you mean" lookup: a value that must be one of a fixed set of names."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from ..errors import UnknownChoiceError

__all__ = ["check_choice", "unknown_choice"]


def unknown_choice(kind: str, value: object, choices: Iterable[str], *, hints: int = 1,
                   valid: str | None = None) -> UnknownChoiceError:
    """The error for ``value`` not being a valid ``kind``: close matches first, then the valid choices
    (``valid`` replaces the list, for sets too large to print)."""
    names = list(choices)
    close = difflib.get_close_matches(str(value), names, n=hints, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return UnknownChoiceError(f"unknown {kind} {value!r}{hint}; valid choices: {valid or names}")


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; otherwise raise :func:`unknown_choice`'s error."""
    names = list(choices)
    if value not in names:
        raise unknown_choice(kind, value, names)
    return value
