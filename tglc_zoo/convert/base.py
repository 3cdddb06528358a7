"""The dense model a conversion starts from: built from a name, or recognised from an object.

A *base* is named as ``create_model`` names models:

* a timm model name (``"resnet50"``, ``"resnet18.a1_in1k"``) — tglc_zoo's own names are timm names too;
* ``"torchvision:<name>"`` — a torchvision classification model (``torchvision.models.get_model``).

:func:`build_base` builds one from its name and keyword arguments (random initialisation, never a
download); :func:`describe_base` recognises the name and arguments of a model object, so that a
converted model can record what rebuilds it; :func:`base_data_cfg` is its data config (timm's
``pretrained_cfg``; torchvision's ImageNet defaults).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import create_model, is_model

__all__ = ["TORCHVISION_PREFIX", "build_base", "describe_base", "base_data_cfg", "classifier_name",
           "torchvision_name"]

TORCHVISION_PREFIX = "torchvision:"
# torchvision's classification transforms: resize 256, centre crop 224, ImageNet mean/std, bilinear
_TV_DATA_CFG: dict[str, Any] = dict(input_size=(3, 224, 224), interpolation="bilinear", crop_pct=0.875,
                                    crop_mode="center", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def build_base(base: str, base_args: dict[str, Any] | None = None) -> nn.Module:
    """The dense model ``base`` with ``base_args``, randomly initialised (under the current default device)."""
    args = dict(base_args or {})
    if base.startswith(TORCHVISION_PREFIX):
        import torchvision

        return torchvision.models.get_model(base[len(TORCHVISION_PREFIX):], weights=None, **args)
    if is_model(base):
        return create_model(base, **args)
    import timm

    return timm.create_model(base, pretrained=False, **args)


def classifier_name(model: nn.Module) -> str | None:
    """The classifier: ``pretrained_cfg["classifier"]`` when it names a module, else the last ``nn.Linear``."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = dict(model.named_modules())
    named = cfg.get("classifier")
    if isinstance(named, str) and named in names:
        return named
    linears = [n for n, m in names.items() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _num_classes(model: nn.Module) -> int | None:
    value = getattr(model, "num_classes", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    name = classifier_name(model)
    head = model.get_submodule(name) if name else None
    return int(head.out_features) if isinstance(head, nn.Linear) else None


def torchvision_name(model: nn.Module) -> str | None:
    """The torchvision builder that makes exactly this model's structure with only ``num_classes`` set.

    Every classification builder of the model's family is built on the meta device and compared module
    by module (``repr``: layers, channels, strides, dropout rates). ``None`` when none or several match.
    """
    import torchvision.models as tvm

    module = type(model).__module__
    if not module.startswith("torchvision.models."):
        return None
    num_classes = _num_classes(model)
    target = repr(model)
    matches = []
    for name in tvm.list_models(module=tvm):
        builder = tvm.get_model_builder(name)
        if builder.__module__ != module:
            continue
        try:
            with torch.device("meta"):
                candidate = builder(weights=None, num_classes=num_classes)
        except Exception:  # a builder of the family with other required arguments
            continue
        if type(candidate) is type(model) and repr(candidate) == target:
            matches.append(name)
    return matches[0] if len(matches) == 1 else None


def describe_base(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """``(base, base_args)`` that rebuild ``model``'s structure, or ``None`` when it cannot be told.

    A tglc_zoo model: its architecture and ``model_args``; a timm model: its architecture and the
    arguments ``timm.create_model`` recorded (``_model_args``); a torchvision model: its builder
    (:func:`torchvision_name`) and ``num_classes``.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture")
    if isinstance(arch, str) and is_model(arch):
        args = dict(getattr(model, "model_args", None) or {})
        return arch, {**args, "num_classes": _num_classes(model)}
    timm_args = getattr(model, "_model_args", None)
    if isinstance(arch, str) and isinstance(timm_args, dict):
        return arch, {k: v for k, v in timm_args.items() if k not in ("pretrained_cfg", "pretrained_cfg_overlay")}
    name = torchvision_name(model)
    if name is not None:
        return TORCHVISION_PREFIX + name, {"num_classes": _num_classes(model)}
    return None


def base_data_cfg(model: nn.Module, first_conv: str | None) -> dict[str, Any]:
    """The model's data config as a ``pretrained_cfg`` (timm's own; torchvision's ImageNet defaults),
    with ``num_classes``, ``first_conv`` and ``classifier`` filled in."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if not cfg:
        cfg = dict(_TV_DATA_CFG)
    stem = model.get_submodule(first_conv) if first_conv else None
    if isinstance(stem, nn.Conv2d) and cfg.get("input_size") and cfg["input_size"][0] != stem.in_channels:
        cfg["input_size"] = (stem.in_channels, *cfg["input_size"][1:])
    classifier = classifier_name(model)
    cfg.update({k: v for k, v in dict(first_conv=first_conv, classifier=classifier,
                                      num_classes=_num_classes(model)).items() if v is not None})
    return cfg
