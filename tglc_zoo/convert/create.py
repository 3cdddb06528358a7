"""One line from a name: ``create_grouped("resnet50", pretrained=..., conv_type="gc2l", groups=4)``.

Spelled like :func:`tglc_zoo.create_model` — a model name, ``pretrained``, then keyword arguments, with
``conv_type`` and ``groups`` among them — and accepting what timm and torchvision name:

* a timm name (``"resnet50"``, ``"resnet18.a1_in1k"``, tglc_zoo's own dense names, ``"hf-hub:org/name"``);
* ``"torchvision:<name>"`` (``"torchvision:resnet18"``);
* a model object (timm, torchvision, any ``nn.Module``) — the same as :func:`~.model.to_grouped`.

The dense model is built (with its dense pretrained weights when ``pretrained`` says so), converted by
:func:`~.model.to_grouped` and returned with its data config and a rebuildable grouping spec.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..builder import load_pretrained_into
from ..checkpoint import read_state_dict, resolve_source
from ..registry import is_model
from .base import TORCHVISION_PREFIX, build_base
from .model import to_grouped
from .spec import ConversionError

__all__ = ["create_grouped", "create_dense"]

_BASE_SOURCE = ("hf-hub:", "local-dir:")


def _is_path(value: Any) -> bool:
    return isinstance(value, Path) or (isinstance(value, str) and (os.path.exists(value) or "://" in value))


def create_dense(model_name: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """The dense model ``model_name`` names (see the module docstring), with its pretrained weights.

    ``pretrained``: ``False``; ``True`` (timm's default weights for the name, downloaded unless cached;
    torchvision's ``"DEFAULT"`` weights); a torchvision weights name (``"IMAGENET1K_V1"``); or a file / folder /
    URL of dense weights for this architecture (loaded strictly, as :func:`tglc_zoo.from_pretrained` does).
    """
    if _is_path(pretrained) and not is_model(model_name):  # dense weights for this architecture: loaded strictly
        model = build_base(model_name, kwargs)
        _load_weights(model, pretrained)
        return model
    if model_name.startswith(TORCHVISION_PREFIX):
        import torchvision

        weights = "DEFAULT" if pretrained is True else (pretrained or None)
        return torchvision.models.get_model(model_name[len(TORCHVISION_PREFIX):], weights=weights, **kwargs)
    if is_model(model_name):
        return build_base(model_name, {**kwargs, "pretrained": pretrained} if pretrained else kwargs)
    import timm

    if not isinstance(pretrained, bool):
        raise ConversionError(f"pretrained={pretrained!r} is not understood for the timm model {model_name!r}; "
                              "valid: False, True, or a weights file / folder")
    return timm.create_model(model_name, pretrained=pretrained, **kwargs)


def _load_weights(model: nn.Module, source: Any) -> None:
    resolved = resolve_source(str(source))
    load_pretrained_into(model, read_state_dict(resolved))


def create_grouped(model_name: str | nn.Module, pretrained: Any = False, *, conv_type: str = "gc2l", groups: int = 4,
                   method: str = "optimal", calibration_data: Any = None, include: Any = None, exclude: Any = None,
                   keep_stem: bool = True, recalibrate_bn: Any = False, conv_kwargs: dict[str, Any] | None = None,
                   max_iter: int = 30, device: str | torch.device | None = None,
                   input_size: Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """The GC / GC-2L version of a dense CNN, from its name (or the model itself), in one call.

    Args:
        model_name: a timm name, ``"torchvision:<name>"``, or a model object (then ``pretrained`` and
            ``kwargs`` must be empty).
        pretrained: the dense weights to convert (:func:`create_dense`).
        conv_type, groups: the target, GC-2L or GC with N = ``groups``.
        method, calibration_data, include, exclude, keep_stem, recalibrate_bn, conv_kwargs, max_iter:
            as for :func:`tglc_zoo.convert.to_grouped`.
        device: where the dense model is converted (default: where it was built).
        input_size: ``(C, H, W)`` at which the report counts FLOPs (default: the model's data config).
        **kwargs: arguments of the dense model (``num_classes``, ``in_chans``, ``drop_rate``, ...).

    Returns:
        The converted model with ``conversion_report``; ``save_pretrained`` writes it as a checkpoint that
        ``from_pretrained`` and ``timm.create_model("local-dir:...", pretrained=True)`` load back.
    """
    if isinstance(model_name, nn.Module):
        if pretrained or kwargs:
            raise ConversionError("create_grouped(<model object>) converts the object as it is: pretrained and "
                                  f"model arguments apply to names only (got pretrained={pretrained!r}, "
                                  f"{sorted(kwargs)})")
        dense, base, base_args = model_name, None, None
    elif isinstance(model_name, str):
        dense = create_dense(model_name, pretrained, **kwargs).eval()
        if model_name.startswith(_BASE_SOURCE):  # a dense checkpoint: its own architecture is the base
            base, base_args = None, None
        else:
            base, base_args = model_name, dict(kwargs)
    else:
        raise TypeError(f"model_name must be a model name or an nn.Module, got {type(model_name).__name__}")
    if device is not None:
        dense = dense.to(device)
    surgery = dict(include=include, exclude=exclude, keep_stem=keep_stem)
    if base is not None and not is_model(base):
        surgery.update(base=base, base_args=base_args)
    return to_grouped(dense, conv_type, groups, method, calibration_data, recalibrate_bn=recalibrate_bn,
                      conv_kwargs=conv_kwargs, max_iter=max_iter, input_size=input_size, **surgery)
