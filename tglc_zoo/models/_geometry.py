"""Stage geometry: each stage's stride and dilation under an ``output_stride`` (timm's rule)."""
from collections.abc import Sequence
from dataclasses import dataclass

from ..util.choices import unknown_choice

__all__ = ["StageGeometry", "stage_geometry"]


@dataclass(frozen=True)
class StageGeometry:
    """Where one stage runs: the stride of its first block, the dilation of its first block's strided conv
    and of the others, and the total reduction after it."""

    stride: int
    first_dilation: int
    dilation: int
    reduction: int


def stage_geometry(strides: Sequence[int], start_reduction: int, output_stride: int | None) -> list[StageGeometry]:
    """The geometry of stages with nominal ``strides`` after a stem that reduces by ``start_reduction``.

    With ``output_stride``, a stride that would take the reduction past it becomes dilation instead
    (timm's rule), so the later stages keep the resolution. ``None`` keeps every stride. Valid values are
    the reductions the stages reach (the error names the bad value and lists them).
    """
    reductions = [start_reduction]
    for s in strides:
        reductions.append(reductions[-1] * s)
    valid = sorted(set(reductions))
    if output_stride is not None and output_stride not in valid:
        raise unknown_choice("output_stride", output_stride, [str(v) for v in valid],
                             valid=f"{valid} (the reductions this architecture's stages reach)")
    out = []
    reduction, dilation = start_reduction, 1
    for s in strides:
        first_dilation = dilation
        if output_stride is not None and reduction * s > output_stride:
            dilation *= s
            s = 1
        reduction *= s
        out.append(StageGeometry(s, first_dilation, dilation, reduction))
    return out
