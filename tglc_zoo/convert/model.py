"""Whole-model conversion: a dense model → its GC or GC-2L counterpart, weights fitted per layer.

Two routes build the converted architecture, one shared step fits it:

* a dense **tglc_zoo** model becomes the registered architecture ``<arch>_<conv_type>_n<N>`` (the
  paper's replacement rules, README "Models"), as ``create_model`` builds it (:mod:`.zoo_route`);
* **any other** ``nn.Module`` — a timm or torchvision CNN, or a zoo model converted with ``include`` /
  ``exclude`` / ``keep_stem=False`` — is copied and every eligible ``nn.Conv2d`` replaced in the copy
  (:mod:`.surgery_route`); it is saved under the generic architecture :data:`~.spec.GROUPED_ARCH`.

Either way :func:`.transfer.fit_layers` fits each replaced convolution to the source's dense kernel
(:func:`.fit.fit_conv`) and loads it; :func:`to_grouped` then puts the model on the source's device,
re-estimates BatchNorm when asked, and attaches a :class:`~.report.ConversionReport`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import chain
from typing import Any

from torch import nn

from ..layers.flops import model_flops
from ..util.unwrap import unwrap_model
from .batchnorm import recalibrate_batchnorm
from .calibration import DEFAULT_BATCH_SIZE, CalibrationData, modes_restored, reiterable
from .fit import check_target_type
from .report import ConversionReport, LayerReport, SkippedConv
from .spec import ConversionError
from .surgery import ConvChoice, choose_convs, find_stem
from .surgery_route import surgery_target
from .transfer import FitSettings, fit_layers
from .zoo_route import zoo_arch, zoo_target

__all__ = ["LayerReport", "ConversionReport", "SkippedConv", "to_grouped"]

_logger = logging.getLogger(__name__)


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``torch.compile``'s, ``DistributedDataParallel``'s or ``DataParallel``'s wrapper."""
    inner, wrappers = unwrap_model(model)
    if wrappers:
        _logger.warning("to_grouped converts the %s inside %s and returns it unwrapped: the converted model has new "
                        "parameters, so wrap it again after the conversion", type(inner).__name__,
                        " inside ".join(wrappers))
    return inner


def _check_source(model: nn.Module) -> None:
    meta = next((n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta), None)
    if meta is not None:
        raise ConversionError(f"{meta!r} of the source {type(model).__name__} is on the meta device: it has a shape "
                              "but no values, and to_grouped fits the dense weights' values; materialise and load "
                              "them first (model.to_empty(device='cpu'), then model.load_state_dict(...))")


def _skipped(choices: list[ConvChoice], replaced: Sequence[str], zoo: bool) -> list[SkippedConv]:
    done = set(replaced)
    rule = "kept by the tglc_zoo architecture's replacement rule (the paper's; README, Models)"
    return [SkippedConv(c.name, c.shape, c.groups, c.reason or rule, c.aliases) for c in choices
            if c.name not in done and (zoo or not c.replace)]


def _input_size(model: nn.Module, given: Sequence[int] | None) -> tuple[int, ...]:
    if given is not None:
        return tuple(int(v) for v in given)
    stem = find_stem(model)
    conv = model.get_submodule(stem[0]) if stem else None
    chans = conv.in_channels if isinstance(conv, nn.Conv2d) else 3
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size") or (3, 224, 224)
    return (chans, *tuple(int(v) for v in size[1:]))


def _flops(model: nn.Module, size: tuple[int, ...]) -> int | None:
    with modes_restored(model):
        try:
            return model_flops(model.eval(), (1, *size))
        except Exception:  # a model that does not run on this input size: the report says so with None
            return None


def _finish(model: nn.Module, target: nn.Module, report: ConversionReport, bn_data: CalibrationData | None,
            settings: FitSettings, input_size: Sequence[int] | None) -> nn.Module:
    """On the source's device, BatchNorm re-estimated when asked, with the report's totals filled in."""
    target.to(next(model.parameters()).device)
    if bn_data is not None:
        recalibrate_batchnorm(target, bn_data, batch_size=settings.batch_size, max_batches=settings.max_batches)
        report.batchnorm_recalibrated = True
    report.input_size = _input_size(model, input_size)
    report.params_before = sum(p.numel() for p in model.parameters())
    report.params_after = sum(p.numel() for p in target.parameters())
    report.flops_before, report.flops_after = _flops(model, report.input_size), _flops(target, report.input_size)
    target.conversion_report = report  # type: ignore[assignment]  # Module.__setattr__ is typed Tensor | Module
    return target


def to_grouped(model: nn.Module, conv_type: str = "gc2l", groups: int = 4, method: str = "optimal",
               calibration_data: CalibrationData | None = None, *, include: str | Sequence[str] | None = None,
               exclude: str | Sequence[str] | None = None, keep_stem: bool = True,
               recalibrate_bn: bool | CalibrationData = False, conv_kwargs: dict[str, Any] | None = None,
               base: str | None = None, base_args: dict[str, Any] | None = None,
               input_size: Sequence[int] | None = None, max_iter: int = 30, tol: float = 1e-6,
               calibration_batch_size: int = DEFAULT_BATCH_SIZE, calibration_batches: int | None = None) -> nn.Module:
    """Convert a dense model into its GC / GC-2L counterpart with N = ``groups`` (the source is not modified).

    A dense tglc_zoo model becomes ``create_model(f"{arch}_{conv_type}_n{groups}")`` (the paper's rules; in
    MobileNetV2 the final 1×1 conv is a GC in both targets). Any other model — or a zoo model with
    ``include``, ``exclude`` or ``keep_stem=False`` — is copied and every eligible ``nn.Conv2d`` (dense,
    N divides its channels, not the stem, selected by the patterns; see :mod:`tglc_zoo.convert.surgery`)
    becomes a ``conv_type`` layer with its stride, padding, dilation and bias. Every tensor outside the
    replaced convolutions (BatchNorm statistics included) is copied; each replaced one is fitted to the
    dense kernel by :func:`tglc_zoo.convert.fit_conv`.

    What the model means is kept: a convolution under several names is replaced under all of them,
    convolutions holding one weight get one set of fitted parameters, and ``requires_grad`` and every
    module's train/eval mode are copied (:mod:`tglc_zoo.convert.surgery`). A model wrapped by
    ``torch.compile``, ``DistributedDataParallel`` or ``DataParallel`` is unwrapped (a logged warning):
    the converted model has new parameters, so wrap it again after the conversion. Non-finite weights or
    calibration images, and a model on the meta device (no values to fit), are refused by name.

    Args:
        model: the dense source model (or a compiled / DDP-wrapped one: see above).
        conv_type: ``"gc2l"`` or ``"gc"``.
        groups: N.
        method: ``"block_jacobi"`` (keep the diagonal blocks; GC-2L's coarse level starts at zero) or
            ``"optimal"`` (least-squares coarse level, see :mod:`tglc_zoo.convert.fit`).
        calibration_data: input images — a ``(B, C, H, W)`` tensor or an iterable of batches /
            ``(images, labels)`` pairs — already normalised as the model expects. With it, each layer is
            fitted to the second moment of its real input patches in the source model. Only
            ``method="optimal"`` uses it.
        include, exclude: ``fnmatch`` patterns of module names: only convolutions matching ``include``
            (when given) and none of ``exclude`` are replaced.
        keep_stem: leave the stem (timm's ``first_conv``, else the first convolution) dense.
        recalibrate_bn: re-estimate every BatchNorm's running statistics after the conversion: ``True``
            on ``calibration_data``, or on the images given here (:func:`recalibrate_batchnorm`).
        conv_kwargs: options of the new layers (e.g. ``{"impl": "fused"}`` for GC-2L).
        base, base_args: the name and arguments that rebuild the source (a timm name or
            ``"torchvision:<name>"``), recorded for ``save_pretrained``; recognised from the model when omitted.
        input_size: ``(C, H, W)`` at which the report counts FLOPs (default: the model's data config).
        max_iter, tol: alternating least squares of the calibrated GC-2L fit.
        calibration_batch_size, calibration_batches: chunking of ``calibration_data``.

    Returns:
        The converted model, in the source's train/eval mode and on its device, with ``conversion_report``
        (a :class:`ConversionReport`: every convolution replaced — with its relative error and block
        Jacobi's — or kept and why, parameters and FLOPs before and after).
    """
    check_target_type(conv_type)
    settings = FitSettings(method, None if calibration_data is None else reiterable(calibration_data), max_iter,
                           tol, calibration_batch_size, calibration_batches)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if recalibrate_bn is True and calibration_data is None:
        raise ValueError("recalibrate_bn=True re-estimates BatchNorm on calibration_data, which is None; "
                         "pass the images as recalibrate_bn=<images>")
    bn_data = (settings.calibration_data if recalibrate_bn is True
               else None if recalibrate_bn is False else recalibrate_bn)
    model = _unwrap(model)
    _check_source(model)
    surgery = include is not None or exclude is not None or not keep_stem or base is not None
    arch = None if surgery else zoo_arch(model)
    choices = choose_convs(model, groups, include=include, exclude=exclude, keep_stem=keep_stem)
    target, names = (zoo_target(model, arch, conv_type, groups, conv_kwargs) if arch is not None else
                     surgery_target(model, choices, conv_type, groups, conv_kwargs, base, base_args))
    report = ConversionReport(conv_type, groups, method, settings.calibrated,
                              layers=fit_layers(model, target, names, groups, settings),
                              skipped=_skipped(choices, names, zoo=arch is not None))
    return _finish(model, target, report, bn_data, settings, input_size)
