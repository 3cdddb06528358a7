"""The step both conversion routes share: fit each replaced convolution to the source's kernel and load it.

Each route (:mod:`.zoo_route`, :mod:`.surgery_route`) builds a *target*: the converted architecture,
with fresh GC / GC-2L layers under the names of the source's convolutions they replace and every
other tensor already copied. :func:`fit_layers` then, for every replaced name,

1. checks the pair: the source layer is a dense, zero-padded ``nn.Conv2d`` whose geometry (channels,
   kernel, stride, padding, dilation, bias) is the new layer's, and whose kernel is finite;
2. collects the second moments of the layers' real input patches when calibration data are given
   (:func:`.calibration.input_moments`, one pass over the data per chunk of layers);
3. fits the dense kernel (:func:`.fit.fit_conv`) and loads the fit, the bias copied as it is.

Convolutions that hold one weight (tied) are fitted once, to the mean of their input moments — the
sum of their mean squared output errors — since their new layers share the fitted parameters
(:func:`.surgery.graft` ties them). The result is one :class:`~.report.LayerReport` per name, in order.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ..layers import GroupConv2d, TwoLevelGroupConv2d
from .calibration import DEFAULT_BATCH_SIZE, CalibrationData, input_moments
from .fit import ConvFit, check_method, fit_conv
from .report import LayerReport
from .spec import ConversionError
from .surgery import aliases, conv_geometry

__all__ = ["FitSettings", "Replaced", "fit_layers"]

Replaced = GroupConv2d | TwoLevelGroupConv2d


@dataclass(frozen=True, eq=False)
class FitSettings:
    """How every layer is fitted: the ``to_grouped`` arguments of the same meaning (checked here)."""

    method: str = "optimal"
    calibration_data: CalibrationData | None = None
    max_iter: int = 30
    tol: float = 1e-6
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batches: int | None = None

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.calibration_data is not None and self.method != "optimal":
            raise ValueError(f"calibration_data is only used by method='optimal'; got method={self.method!r} "
                             "(block Jacobi keeps the diagonal blocks whatever the data)")

    @property
    def calibrated(self) -> bool:
        return self.calibration_data is not None


def _check_pair(name: str, src: nn.Module, tgt: nn.Module) -> nn.Conv2d:
    if not isinstance(src, nn.Conv2d) or src.groups != 1:
        raise TypeError(f"layer {name!r}: expected a dense nn.Conv2d in the source model, got {src!r}")
    padding = conv_geometry(src)
    if src.padding_mode != "zeros" or padding is None:
        raise ValueError(f"layer {name!r}: only zero-padded convolutions with symmetric padding convert; "
                         f"got padding_mode={src.padding_mode!r}, padding={src.padding!r}")
    ref = tgt.conv if isinstance(tgt, TwoLevelGroupConv2d) else tgt
    assert isinstance(ref, nn.Conv2d)
    src_geo = (src.in_channels, src.out_channels, src.kernel_size, src.stride, padding, src.dilation,
               src.bias is not None)
    tgt_geo = (ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride, ref.padding, ref.dilation,
               ref.bias is not None)
    if src_geo != tgt_geo:
        raise ValueError(f"layer {name!r}: source (in, out, kernel, stride, padding, dilation, bias) = {src_geo} "
                         f"does not match the converted layer's {tgt_geo}")
    bad = int((~torch.isfinite(src.weight.detach())).sum())
    if bad:
        raise ConversionError(f"layer {name!r}: its dense kernel holds {bad} non-finite values (NaN or inf); "
                              "only finite weights can be fitted")
    return src


@torch.no_grad()
def _load_fit(tgt: Replaced, fit: ConvFit, src: nn.Conv2d) -> None:
    ref = tgt.conv if isinstance(tgt, TwoLevelGroupConv2d) else tgt
    ref.weight.copy_(fit.agp)
    if src.bias is not None:
        assert ref.bias is not None  # _check_pair matched the bias of source and target
        ref.bias.copy_(src.bias)
    if isinstance(tgt, TwoLevelGroupConv2d):
        assert fit.restrict is not None and fit.coarse is not None
        tgt.restrict.weight.copy_(fit.restrict)
        tgt.coarse.weight.copy_(fit.coarse.reshape(tgt.coarse.weight.shape))


def fit_layers(model: nn.Module, target: nn.Module, names: Sequence[str], groups: int,
               settings: FitSettings) -> list[LayerReport]:
    """Fit every ``names`` layer of ``target`` to the dense convolution of ``model`` under that name, load it,
    and report it (see the module docstring)."""
    layers = {n: cast(Replaced, target.get_submodule(n)) for n in names}
    sources = {n: _check_pair(n, model.get_submodule(n), tgt) for n, tgt in layers.items()}
    moments = (input_moments(model, sources, settings.calibration_data, batch_size=settings.batch_size,
                             max_batches=settings.max_batches) if settings.calibration_data is not None else {})
    tied: dict[int, list[str]] = {}
    for name, src in sources.items():
        tied.setdefault(id(src.weight), []).append(name)
    also = aliases(model)
    reports: dict[str, LayerReport] = {}
    for group in tied.values():
        src = sources[group[0]]
        layer_type = "gc2l" if isinstance(layers[group[0]], TwoLevelGroupConv2d) else "gc"
        cov = torch.stack([moments[n] for n in group]).mean(0) if moments else None
        fit = fit_conv(src.weight.detach().cpu(), groups, layer_type, settings.method, cov,
                       max_iter=settings.max_iter, tol=settings.tol)
        for name in group:
            _load_fit(layers[name], fit, sources[name])
            reports[name] = LayerReport(name, layer_type, tuple(src.weight.shape), fit.relative_error,
                                        fit.relative_block_jacobi_error, fit.calibrated, fit.iterations,
                                        fit.reference, also.get(name, ()), tuple(n for n in group if n != name))
    return [reports[n] for n in names]
