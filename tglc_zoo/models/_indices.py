"""timm's feature-index rule (which levels ``forward_intermediates`` and ``out_indices`` take).

timm implements the same rule as ``feature_take_indices``, but exports it only from its private
``timm.models._features`` module, and reports a bad index with a bare ``AssertionError``; this one raises
:class:`~tglc_zoo.errors.ModelArgumentError` naming the valid range.
"""
from collections.abc import Sequence

from ..errors import ModelArgumentError

__all__ = ["take_indices"]


def take_indices(num_levels: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """``None`` all levels, an int the last n, a sequence those (negative from the end). Returns the absolute
    indices and the largest one; an index out of range names the valid range."""
    if indices is None:
        indices = num_levels
    if isinstance(indices, int):
        if not 0 < indices <= num_levels:
            raise ModelArgumentError(f"take the last {indices} feature levels: out of range; valid: 1 to {num_levels}")
        taken = list(range(num_levels - indices, num_levels))
    else:
        taken = []
        for i in indices:
            idx = num_levels + i if i < 0 else i
            if not 0 <= idx < num_levels:
                raise ModelArgumentError(f"feature index {i} is out of range; valid: {-num_levels} to {num_levels - 1} "
                                         f"(this model has {num_levels} feature levels)")
            taken.append(idx)
        if not taken:
            raise ModelArgumentError("no feature index given; valid: a non-empty list of indices, an int, or None")
    return taken, max(taken)
