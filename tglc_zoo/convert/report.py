"""What a conversion did: every convolution replaced (with the error of its fit) or skipped (with why),
and the parameters and FLOPs of the model before and after."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LayerReport", "SkippedConv", "ConversionReport"]


@dataclass(frozen=True)
class LayerReport:
    """One converted layer: its errors relative to ``‖W‖²`` in the metric of the fit."""

    name: str
    conv_type: str
    shape: tuple[int, ...]
    relative_error: float
    relative_block_jacobi_error: float
    calibrated: bool
    iterations: int
    reference: float = 0.0        # ‖W‖² in the metric of the fit (weights the layer in a model-level error)
    aliases: tuple[str, ...] = ()  # other names of this very module, replaced with it
    tied: tuple[str, ...] = ()     # other replaced layers that held the same weight: one fit, shared parameters

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedConv:
    """A convolution of the source left as it is, and why."""

    name: str
    shape: tuple[int, ...]
    groups: int
    reason: str
    aliases: tuple[str, ...] = ()  # other names of this very module, kept with it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConversionReport:
    """The report ``to_grouped`` attaches to the converted model (``model.conversion_report``).

    Iterating over it (and ``len``) goes over the replaced layers, as the per-layer list it replaces.
    FLOPs are forward FLOPs of one image of ``input_size`` (:func:`tglc_zoo.layers.flops.model_flops`:
    convolutions and linear layers, one multiply-add = 2 FLOPs).
    """

    conv_type: str
    groups: int
    method: str
    calibrated: bool
    layers: list[LayerReport] = field(default_factory=list)
    skipped: list[SkippedConv] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    flops_before: int | None = None
    flops_after: int | None = None
    input_size: tuple[int, ...] | None = None
    batchnorm_recalibrated: bool = False

    def __iter__(self) -> Iterator[LayerReport]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> LayerReport:
        return self.layers[index]

    @property
    def mean_relative_error(self) -> float:
        """Mean over replaced layers of the fit's relative error."""
        return sum(r.relative_error for r in self.layers) / len(self.layers) if self.layers else 0.0

    @property
    def mean_relative_block_jacobi_error(self) -> float:
        return (sum(r.relative_block_jacobi_error for r in self.layers) / len(self.layers)
                if self.layers else 0.0)

    @property
    def total_relative_error(self) -> float:
        """``Σ err / Σ ‖W‖²`` over the replaced layers: the error of all their weights together."""
        ref = sum(r.reference for r in self.layers)
        return sum(r.relative_error * r.reference for r in self.layers) / ref if ref > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("layers", "skipped")}
        out.update(layers=[r.to_dict() for r in self.layers], skipped=[s.to_dict() for s in self.skipped],
                   mean_relative_error=self.mean_relative_error,
                   mean_relative_block_jacobi_error=self.mean_relative_block_jacobi_error,
                   total_relative_error=self.total_relative_error)
        return out

    def summary(self) -> str:
        """A readable account: totals, then one line per layer."""
        lines = [f"{len(self.layers)} convolutions replaced by {self.conv_type} (N={self.groups}, {self.method}"
                 f"{', calibrated' if self.calibrated else ''}), {len(self.skipped)} kept",
                 f"parameters {self.params_before:,} -> {self.params_after:,}"]
        if self.flops_before is not None and self.flops_after is not None:
            lines.append(f"FLOPs/image at {self.input_size}: {self.flops_before:,} -> {self.flops_after:,}")
        for r in self.layers:
            lines.append(f"  replaced {r.name}{_also(r.aliases)}: {r.conv_type} {r.shape}, relative error "
                         f"{r.relative_error:.4f} (block Jacobi {r.relative_block_jacobi_error:.4f})"
                         + (f", weights tied with {', '.join(r.tied)}" if r.tied else ""))
        for s in self.skipped:
            lines.append(f"  kept     {s.name}{_also(s.aliases)}: {s.shape}, {s.reason}")
        return "\n".join(lines)


def _also(names: tuple[str, ...]) -> str:
    return f" (also {', '.join(names)})" if names else ""
