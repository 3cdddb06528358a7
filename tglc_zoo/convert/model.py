"""Whole-model conversion: a dense (SC) zoo model → its GC or GC-2L counterpart, weights fitted per layer."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from timm.models._registry import split_model_name_tag
from torch import nn

from ..archs import VARIANTS
from ..layers import GroupConv2d, TwoLevelGroupConv2d
from ..models._base import ZooModel
from ..registry import create_model
from .calibration import DEFAULT_BATCH_SIZE, CalibrationData, input_moments
from .fit import ConvFit, check_method, check_target_type, fit_conv

# pretrained_cfg fields that describe the data/head (carried over); location fields never are
_DATA_KEYS: tuple[str, ...] = ("num_classes", "input_size", "test_input_size", "fixed_input_size", "mean", "std",
                               "crop_pct", "crop_mode", "interpolation", "pool_size", "label_names", "license")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _source_variant(model: nn.Module) -> tuple[str, str]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture")
    if not isinstance(arch, str) or split_model_name_tag(arch)[0] not in VARIANTS:
        raise TypeError(f"to_grouped converts tglc_zoo models (built by tglc_zoo.create_model or from_pretrained); "
                        f"{type(model).__name__} has pretrained_cfg architecture {arch!r}")
    variant = VARIANTS[split_model_name_tag(arch)[0]]
    conv_type = (getattr(model, "model_args", None) or {}).get("conv_type", variant.conv_type)
    groups = (getattr(model, "model_args", None) or {}).get("groups", variant.groups)
    if conv_type != "sc" or groups != 1:
        raise ValueError(f"to_grouped converts dense models (conv_type 'sc'); {arch!r} has conv_type {conv_type!r} "
                         f"with groups={groups}")
    return variant.arch, arch


def _build_target(model: nn.Module, arch: str, conv_type: str, groups: int) -> nn.Module:
    args = dict(getattr(model, "model_args", None) or {})
    args.update(conv_type=conv_type, groups=groups)
    name = f"{arch}_{conv_type}_n{groups}"
    target = create_model(name if name in VARIANTS else arch, num_classes=model.num_classes, **args)
    src_cfg = getattr(model, "pretrained_cfg", {}) or {}
    zoo = cast(ZooModel, target)  # a tglc_zoo model (create_model of a registered name)
    zoo.pretrained_cfg = {**zoo.pretrained_cfg, **{k: src_cfg[k] for k in _DATA_KEYS if k in src_cfg}}
    return target


def _replaced(target: nn.Module) -> dict[str, GroupConv2d | TwoLevelGroupConv2d]:
    return {name: m for name, m in target.named_modules() if isinstance(m, (GroupConv2d, TwoLevelGroupConv2d))}


def _check_pair(name: str, src: nn.Module, tgt: nn.Module) -> nn.Conv2d:
    if not isinstance(src, nn.Conv2d) or src.groups != 1:
        raise TypeError(f"layer {name!r}: expected a dense nn.Conv2d in the source model, got {src!r}")
    if src.padding_mode != "zeros" or src.dilation != (1, 1) or isinstance(src.padding, str):
        raise ValueError(f"layer {name!r}: only zero-padded, undilated convolutions with integer padding convert; "
                         f"got padding_mode={src.padding_mode!r}, dilation={src.dilation}, padding={src.padding!r}")
    ref = tgt.conv if isinstance(tgt, TwoLevelGroupConv2d) else tgt
    src_geo = (src.in_channels, src.out_channels, src.kernel_size, src.stride, src.padding, src.bias is not None)
    tgt_geo = (ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride, ref.padding, ref.bias is not None)
    if src_geo != tgt_geo:
        raise ValueError(f"layer {name!r}: source (in, out, kernel, stride, padding, bias) = {src_geo} does not match "
                         f"the converted layer's {tgt_geo}")
    return src


@torch.no_grad()
def _load_fit(tgt: GroupConv2d | TwoLevelGroupConv2d, fit: ConvFit, src: nn.Conv2d) -> None:
    ref = tgt.conv if isinstance(tgt, TwoLevelGroupConv2d) else tgt
    ref.weight.copy_(fit.agp)
    if src.bias is not None:
        assert ref.bias is not None  # _check_pair matched the bias of source and target
        ref.bias.copy_(src.bias)
    if isinstance(tgt, TwoLevelGroupConv2d):
        assert fit.restrict is not None and fit.coarse is not None
        tgt.restrict.weight.copy_(fit.restrict)
        tgt.coarse.weight.copy_(fit.coarse.reshape(tgt.coarse.weight.shape))


def to_grouped(model: nn.Module, conv_type: str = "gc2l", groups: int = 4, method: str = "optimal",
               calibration_data: CalibrationData | None = None, *, max_iter: int = 30, tol: float = 1e-6,
               calibration_batch_size: int = DEFAULT_BATCH_SIZE, calibration_batches: int | None = None) -> nn.Module:
    """Convert a dense (SC) tglc_zoo model into its GC / GC-2L counterpart with N = ``groups``.

    The result has the architecture of ``create_model(f"{arch}_{conv_type}_n{groups}")`` (with the source's
    ``num_classes``, ``in_chans`` and other model arguments). Every parameter and buffer outside the
    replaced convolutions — stem, BatchNorm (statistics included), depthwise convs, head — is copied;
    each replaced convolution is fitted to the source's dense kernel by :func:`tglc_zoo.convert.fit_conv`.

    Args:
        model: the dense source model; it is not modified.
        conv_type: ``"gc2l"`` or ``"gc"``. (In MobileNetV2 the final 1×1 conv is a GC in both.)
        groups: N; must divide the channels of every replaced layer.
        method: ``"block_jacobi"`` (keep the diagonal blocks; GC-2L's coarse level starts at zero) or
            ``"optimal"`` (least-squares coarse level, see :mod:`tglc_zoo.convert.fit`).
        calibration_data: input images — a ``(B, C, H, W)`` tensor or an iterable of batches /
            ``(images, labels)`` pairs — already normalised as the model expects. With it, each layer is
            fitted to the second moment of its real input patches in the source model, i.e. minimises
            the mean squared output error on that data. Only ``method="optimal"`` uses it.
        max_iter, tol: alternating least squares of the calibrated GC-2L fit.
        calibration_batch_size: chunk size when ``calibration_data`` is one tensor.
        calibration_batches: use at most this many batches.

    Returns:
        The converted model, in the source's train/eval mode and on its device, with
        ``conversion_report``: a list of :class:`LayerReport` (relative errors of the fit and of block Jacobi).
    """
    check_target_type(conv_type)
    check_method(method)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if calibration_data is not None and method != "optimal":
        raise ValueError(f"calibration_data is only used by method='optimal'; got method={method!r} "
                         "(block Jacobi keeps the diagonal blocks whatever the data)")
    arch, _ = _source_variant(model)
    device = next(model.parameters()).device
    target = _build_target(model, arch, conv_type, groups)
    replaced = _replaced(target)
    sources = {name: _check_pair(name, model.get_submodule(name), tgt) for name, tgt in replaced.items()}

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

    moments = (input_moments(model, sources, calibration_data, batch_size=calibration_batch_size,
                             max_batches=calibration_batches) if calibration_data is not None else {})
    report: list[LayerReport] = []
    for name, tgt in replaced.items():
        src = sources[name]
        layer_type = "gc2l" if isinstance(tgt, TwoLevelGroupConv2d) else "gc"
        fit = fit_conv(src.weight.detach().cpu(), groups, layer_type, method, moments.get(name),
                       max_iter=max_iter, tol=tol)
        _load_fit(tgt, fit, src)
        report.append(LayerReport(name, layer_type, tuple(src.weight.shape), fit.relative_error,
                                  fit.relative_block_jacobi_error, fit.calibrated, fit.iterations))
    target.to(device).train(model.training)
    target.conversion_report = report  # type: ignore[assignment]  # Module.__setattr__ is typed Tensor | Module
    return target
