"""Validation of the numeric model arguments shared by every family (counts and rates)."""
from typing import Any

from ..errors import ModelArgumentError

__all__ = ["check_positive", "check_rate"]


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """``value`` if it is a positive (or, with ``allow_zero``, non-negative) integer; raise naming it otherwise."""
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ModelArgumentError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, "
                                 f"got {value!r}")
    return value


def check_rate(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1) (dropout-like probabilities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ModelArgumentError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)
