"""Whole-model conversion: a dense model → its GC or GC-2L counterpart, weights fitted per layer.

Two routes, one fit:

* a dense **tglc_zoo** model becomes the registered architecture ``<arch>_<conv_type>_n<N>`` (the
  paper's replacement rules, README "Models"), as ``create_model`` builds it;
* **any other** ``nn.Module`` — a timm or torchvision CNN, or a zoo model converted with ``include`` /
  ``exclude`` / ``keep_stem=False`` — is copied and every eligible ``nn.Conv2d`` replaced in the copy
  (:mod:`.surgery`); it is saved under the generic architecture :data:`~.spec.GROUPED_ARCH`.

Either way each replaced convolution is fitted to the source's dense kernel (:func:`.fit.fit_conv`),
everything else is copied, and the model carries a :class:`~.report.ConversionReport`.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from timm.models._registry import split_model_name_tag
from torch import nn

from ..archs import VARIANTS
from ..checkpoint.config import LOCATION_KEYS
from ..layers import GroupConv2d, TwoLevelGroupConv2d
from ..layers.flops import model_flops
from ..models._base import ZooModel
from ..registry import create_model
from .base import base_data_cfg, describe_base
from .batchnorm import recalibrate_batchnorm
from .calibration import DEFAULT_BATCH_SIZE, CalibrationData, input_moments
from .fit import ConvFit, check_method, check_target_type, fit_conv
from .report import ConversionReport, LayerReport, SkippedConv
from .spec import GROUPED_ARCH, ConversionError, GroupingSpec
from .surgery import ConvChoice, choose_convs, conv_geometry, find_stem, graft

__all__ = ["LayerReport", "ConversionReport", "SkippedConv", "to_grouped"]

# pretrained_cfg fields that describe the data/head (carried over); location fields never are
_DATA_KEYS: tuple[str, ...] = ("num_classes", "input_size", "test_input_size", "fixed_input_size", "mean", "std",
                               "crop_pct", "crop_mode", "interpolation", "pool_size", "label_names", "license")
Replaced = GroupConv2d | TwoLevelGroupConv2d


def _zoo_arch(model: nn.Module) -> str | None:
    """The architecture of a dense tglc_zoo model (``None`` for any other model)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture")
    if not isinstance(arch, str) or split_model_name_tag(arch)[0] not in VARIANTS:
        return None
    variant = VARIANTS[split_model_name_tag(arch)[0]]
    conv_type = (getattr(model, "model_args", None) or {}).get("conv_type", variant.conv_type)
    groups = (getattr(model, "model_args", None) or {}).get("groups", variant.groups)
    if conv_type != "sc" or groups != 1:
        raise ValueError(f"to_grouped converts dense models (conv_type 'sc'); {arch!r} has conv_type {conv_type!r} "
                         f"with groups={groups}")
    return variant.arch


def _zoo_target(model: nn.Module, arch: str, conv_type: str, groups: int,
                conv_kwargs: dict[str, Any] | None) -> nn.Module:
    args = dict(getattr(model, "model_args", None) or {})
    args.update(conv_type=conv_type, groups=groups)
    if conv_kwargs:
        args["conv_kwargs"] = {**args.get("conv_kwargs", {}), **conv_kwargs}
    name = f"{arch}_{conv_type}_n{groups}"
    target = create_model(name if name in VARIANTS else arch, num_classes=model.num_classes, **args)
    src_cfg = getattr(model, "pretrained_cfg", {}) or {}
    zoo = cast(ZooModel, target)  # a tglc_zoo model (create_model of a registered name)
    zoo.pretrained_cfg = {**zoo.pretrained_cfg, **{k: src_cfg[k] for k in _DATA_KEYS if k in src_cfg}}
    return target


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


def _copy_others(model: nn.Module, target: nn.Module, replaced: Sequence[str]) -> None:
    """Every tensor of ``target`` outside the replaced layers, from the source (same keys and shapes)."""
    src_state = model.state_dict()
    state = target.state_dict()
    prefixes = tuple(f"{name}." for name in replaced)
    for key, value in state.items():
        if key.startswith(prefixes):
            continue
        if key not in src_state or src_state[key].shape != value.shape:
            raise ValueError(f"cannot copy {key!r} from the source model: "
                             f"{'missing' if key not in src_state else f'shape {tuple(src_state[key].shape)}'} "
                             f"vs {tuple(value.shape)} in the converted model")
        state[key] = src_state[key]
    target.load_state_dict(state, strict=True)


def _skipped(choices: list[ConvChoice], replaced: Sequence[str], zoo: bool) -> list[SkippedConv]:
    done = set(replaced)
    rule = "kept by the tglc_zoo architecture's replacement rule (the paper's; README, Models)"
    return [SkippedConv(c.name, c.shape, c.groups, c.reason or rule) for c in choices
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
    was = model.training
    try:
        return model_flops(model.eval(), (1, *size))
    except Exception:  # a model that does not run on this input size: the report says so with None
        return None
    finally:
        model.train(was)


def _generic_target(model: nn.Module, choices: list[ConvChoice], conv_type: str, groups: int,
                    conv_kwargs: dict[str, Any] | None, base: str | None, base_args: dict[str, Any] | None
                    ) -> tuple[nn.Module, list[str]]:
    names = [c.name for c in choices if c.replace]
    if not names:
        kept = "; ".join(f"{c.name}: {c.reason}" for c in choices[:12]) or "the model has no nn.Conv2d"
        raise ConversionError(f"nothing to convert in {type(model).__name__} with N={groups}: {kept}")
    if base is None:
        described = describe_base(model)
        base, base_args = described if described is not None else (None, {})
    target = copy.deepcopy(model)
    graft(target, names, conv_type, groups, conv_kwargs)
    spec = GroupingSpec(base, dict(base_args or {}), conv_type, groups, tuple(names), dict(conv_kwargs or {}))
    stem = find_stem(model)
    cfg = {k: v for k, v in base_data_cfg(model, stem[0] if stem else None).items() if k not in LOCATION_KEYS}
    target.pretrained_cfg = {**cfg, "architecture": GROUPED_ARCH, "tag": None}  # type: ignore[assignment]
    target.model_args = spec.to_model_args()  # type: ignore[assignment]  # Module.__setattr__ is typed Tensor|Module
    target.grouping = spec  # type: ignore[assignment]
    return target, names


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

    Args:
        model: the dense source model.
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
    check_method(method)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if calibration_data is not None and method != "optimal":
        raise ValueError(f"calibration_data is only used by method='optimal'; got method={method!r} "
                         "(block Jacobi keeps the diagonal blocks whatever the data)")
    bn_data = calibration_data if recalibrate_bn is True else (None if recalibrate_bn is False else recalibrate_bn)
    if recalibrate_bn is True and calibration_data is None:
        raise ValueError("recalibrate_bn=True re-estimates BatchNorm on calibration_data, which is None; "
                         "pass the images as recalibrate_bn=<images>")
    surgery = include is not None or exclude is not None or not keep_stem or base is not None
    arch = None if surgery else _zoo_arch(model)
    choices = choose_convs(model, groups, include=include, exclude=exclude, keep_stem=keep_stem)
    if arch is not None:
        target = _zoo_target(model, arch, conv_type, groups, conv_kwargs)
        names = [n for n, m in target.named_modules() if isinstance(m, (GroupConv2d, TwoLevelGroupConv2d))]
    else:
        target, names = _generic_target(model, choices, conv_type, groups, conv_kwargs, base, base_args)
    layers = {n: cast(Replaced, target.get_submodule(n)) for n in names}
    sources = {n: _check_pair(n, model.get_submodule(n), tgt) for n, tgt in layers.items()}
    if arch is not None:
        _copy_others(model, target, names)

    moments = (input_moments(model, sources, calibration_data, batch_size=calibration_batch_size,
                             max_batches=calibration_batches) if calibration_data is not None else {})
    report = ConversionReport(conv_type, groups, method, calibrated=calibration_data is not None,
                              skipped=_skipped(choices, names, arch is not None))
    for name, tgt in layers.items():
        src = sources[name]
        layer_type = "gc2l" if isinstance(tgt, TwoLevelGroupConv2d) else "gc"
        fit = fit_conv(src.weight.detach().cpu(), groups, layer_type, method, moments.get(name),
                       max_iter=max_iter, tol=tol)
        _load_fit(tgt, fit, src)
        report.layers.append(LayerReport(name, layer_type, tuple(src.weight.shape), fit.relative_error,
                                         fit.relative_block_jacobi_error, fit.calibrated, fit.iterations,
                                         fit.reference))
    device = next(model.parameters()).device
    target.to(device).train(model.training)
    if bn_data is not None:
        recalibrate_batchnorm(target, bn_data, batch_size=calibration_batch_size, max_batches=calibration_batches)
        report.batchnorm_recalibrated = True
    report.input_size = _input_size(model, input_size)
    report.params_before = sum(p.numel() for p in model.parameters())
    report.params_after = sum(p.numel() for p in target.parameters())
    report.flops_before, report.flops_after = _flops(model, report.input_size), _flops(target, report.input_size)
    target.conversion_report = report  # type: ignore[assignment]  # Module.__setattr__ is typed Tensor | Module
    return target
