"""Converted models as checkpoints: the architecture :data:`GROUPED_ARCH` (``tglc_grouped``) that rebuilds them.

``save_pretrained`` writes a converted model (of any base) as a checkpoint folder whose ``config.json``
names ``"architecture": "tglc_grouped"`` and whose ``model_args`` are the :class:`~.spec.GroupingSpec`
(:func:`grouped_checkpoint_config`). :class:`GroupedArchitecture` is registered like any other
architecture (:func:`tglc_zoo.registry.register_architecture`, which registers it with timm too), so
``from_pretrained``, ``create_model`` and timm's ``local-dir:``/``hf-hub:`` routes all rebuild the model
through the one builder — base built with random init (:func:`build_grouped`), the listed convolutions
replaced — which checks it and loads the weights. The base spec may name only an architecture
(:mod:`.base_policy`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from ..builder import BuildRequest, Limits
from ..builder.arch import timm_cfg
from ..builder.plan import PRETRAINED_CFG_FIELDS
from ..checkpoint import make_config
from ..errors import ConfigError
from ..registry import register_architecture
from .base import TORCHVISION_PREFIX, build_base, classifier_name
from .base_policy import check_base
from .spec import GROUPED_ARCH, ConversionError, GroupingSpec
from .surgery import graft

__all__ = ["GROUPED_ARCH", "GroupedArchitecture", "build_grouped", "grouped_checkpoint_config", "is_grouped"]

SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(GroupingSpec))
_HEAD_STEM = ("num_classes", "in_chans")


def is_grouped(model: nn.Module) -> bool:
    """True for a model converted by surgery (it carries a :class:`GroupingSpec`)."""
    return isinstance(getattr(model, "grouping", None), GroupingSpec)


def _base_args(spec: GroupingSpec, num_classes: int | None, in_chans: int | None) -> dict[str, Any]:
    args = dict(spec.base_args)
    if num_classes is not None:
        args["num_classes"] = num_classes
    if in_chans is not None:
        assert spec.base is not None
        if spec.base.startswith(TORCHVISION_PREFIX):
            if in_chans != 3:
                raise ConversionError(f"{spec.base} takes 3-channel images; in_chans={in_chans} is not supported")
        else:
            args["in_chans"] = in_chans
    return args


def build_grouped(spec: GroupingSpec, pretrained_cfg: dict[str, Any] | None = None, *,
                  num_classes: int | None = None, in_chans: int | None = None) -> nn.Module:
    """The converted architecture of ``spec``: the base with random init and the listed convolutions replaced
    (fresh layers; load weights to use it). ``pretrained_cfg`` (its data config) is attached."""
    base = spec.base
    if base is None:
        raise ConversionError("this converted model records no base model, so it cannot be rebuilt: convert a "
                              "model built by name (tglc_zoo.convert.create_grouped('<timm name>' or "
                              "'torchvision:<name>', ...)) or pass to_grouped(..., base=, base_args=)")
    spec = dataclasses.replace(spec, base_args=_base_args(spec, num_classes, in_chans))
    model = build_base(base, spec.base_args)
    missing = [n for n in spec.layers if not isinstance(dict(model.named_modules()).get(n), nn.Conv2d)]
    if missing:
        raise ConversionError(f"{base} has no nn.Conv2d named {missing[:5]}; the grouping spec does not "
                              "describe this base model")
    graft(model, spec.layers, spec.conv_type, spec.groups, spec.conv_kwargs)
    cfg = dict(pretrained_cfg or getattr(model, "pretrained_cfg", None) or {})
    head = classifier_name(model)
    cfg.update(architecture=GROUPED_ARCH, tag=None)
    if head is not None:
        cfg.setdefault("classifier", head)
        out = model.get_submodule(head)
        if isinstance(out, nn.Linear):
            cfg["num_classes"] = out.out_features
    model.pretrained_cfg = cfg  # type: ignore[assignment]  # Module.__setattr__ is typed Tensor | Module
    model.model_args = spec.to_model_args()  # type: ignore[assignment]
    model.grouping = spec  # type: ignore[assignment]
    return model


class GroupedArchitecture:
    """A dense timm/torchvision CNN converted to GC / GC-2L, rebuilt from its grouping spec.

    Args (of ``create_model("tglc_grouped", ...)``): the grouping spec (``base``, ``base_args``,
    ``conv_type``, ``groups``, ``layers``, ``conv_kwargs``), ``num_classes`` / ``in_chans`` (the base's head
    and stem; a new head / adapted stem when loading), and what every architecture takes: ``pretrained``,
    timm's ``pretrained_cfg``, ``pretrained_cfg_overlay`` and ``cache_dir``, and the limits.
    """

    name = GROUPED_ARCH
    features = False

    def resolve_cfg(self, req: BuildRequest) -> dict[str, Any]:
        cfg = req.pretrained_cfg.to_dict() if hasattr(req.pretrained_cfg, "to_dict") else req.pretrained_cfg
        out = dict(timm_cfg(cfg)) if isinstance(cfg, dict) else {}
        return {k: v for k, v in {**out, **(req.overlay or {})}.items() if k in PRETRAINED_CFG_FIELDS}

    def model_kwargs(self, cfg: dict[str, Any], saved: Mapping[str, Any] | None, requested: Mapping[str, Any],
                     origin: str) -> dict[str, Any]:
        valid = [*SPEC_FIELDS, *_HEAD_STEM]
        for where, args in (("call", requested), (origin, saved or {})):
            unknown = sorted(set(args) - set(valid))
            if unknown:
                raise ConversionError(f"{where}: unknown arguments {unknown} for {GROUPED_ARCH!r}; valid: {valid}")
        changed = sorted(k for k in requested if k in SPEC_FIELDS and saved and k in saved and requested[k] != saved[k])
        if changed:
            raise ConversionError(f"{origin}: a converted ({GROUPED_ARCH}) checkpoint's structure is fixed by its "
                                  f"model_args; {changed} differ from them (only num_classes and in_chans may change)")
        return {**(saved or {}), **requested}

    def validate(self, model_kwargs: Mapping[str, Any], origin: str, limits: Limits) -> None:
        spec = GroupingSpec.from_model_args({k: v for k, v in model_kwargs.items() if k not in _HEAD_STEM},
                                            origin=origin)
        assert spec.base is not None  # from_model_args requires it
        check_base(spec.base, spec.base_args, origin, trust=limits.trust_base)
        for key in _HEAD_STEM:
            value = model_kwargs.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"{origin}: {key} must be a non-negative integer, got {value!r}")

    def build(self, cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> nn.Module:
        spec = GroupingSpec.from_model_args({k: v for k, v in model_kwargs.items() if k not in _HEAD_STEM},
                                            origin=GROUPED_ARCH)
        # the head and stem the base arguments already give (timm's and torchvision's default: 3 channels) are
        # not repeated, so model_args stay those that were saved
        num_classes, in_chans = model_kwargs.get("num_classes"), model_kwargs.get("in_chans")
        return build_grouped(spec, cfg or None,
                             num_classes=None if num_classes == spec.base_args.get("num_classes") else num_classes,
                             in_chans=None if in_chans == spec.base_args.get("in_chans", 3) else in_chans)


tglc_grouped = register_architecture(GroupedArchitecture())


def _num_features(model: nn.Module, head: str | None) -> int:
    """The classifier's input features (timm's ``head_hidden_size`` where a head layer precedes it)."""
    out = model.get_submodule(head) if head else None
    if isinstance(out, nn.Linear):
        return int(out.in_features)
    value = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _global_pool(model: nn.Module) -> str:
    pool = getattr(model, "global_pool", "avg")
    if isinstance(pool, str):
        return pool
    return str(getattr(pool, "pool_type", "avg"))


def _first_difference(a: str, b: str) -> str:
    for x, y in zip(a.splitlines(), b.splitlines()):
        if x != y:
            return f"{x.strip()!r} vs rebuilt {y.strip()!r}"
    return "different lengths"


def grouped_checkpoint_config(model: nn.Module) -> dict[str, Any]:
    """``config.json`` for a model converted by surgery: the generic architecture and its grouping spec.

    The spec is checked before anything is written: the model it rebuilds (on the meta device) must have
    the same structure and state-dict keys and shapes as ``model``.
    """
    spec = cast(GroupingSpec, getattr(model, "grouping", None))
    if not isinstance(spec, GroupingSpec):
        raise ConversionError(f"{type(model).__name__} was not converted by tglc_zoo.convert (no grouping spec)")
    head = classifier_name(model)
    out = model.get_submodule(head) if head else None
    num_classes = int(out.out_features) if isinstance(out, nn.Linear) else int(getattr(model, "num_classes", 0))
    if "num_classes" in spec.base_args or spec.base is not None:
        spec = dataclasses.replace(spec, base_args={**spec.base_args, "num_classes": num_classes})
    with torch.device("meta"):
        rebuilt = build_grouped(spec)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if want != got or repr(rebuilt) != repr(model):
        keys = sorted(set(want) ^ set(got))[:5] or [k for k in want if want[k] != got[k]][:5]
        detail = (f"state dict differs: {keys}" if want != got
                  else f"module structure differs: {_first_difference(repr(model), repr(rebuilt))}")
        raise ConversionError(f"the grouping spec (base={spec.base!r}, base_args={spec.base_args}) does not rebuild "
                              f"this model ({detail}); pass to_grouped(..., base=, base_args=) with the arguments "
                              "the dense model was built with")
    cfg = {k: v for k, v in dict(getattr(model, "pretrained_cfg", None) or {}).items() if k in PRETRAINED_CFG_FIELDS}
    cfg.update(architecture=GROUPED_ARCH, num_classes=num_classes)
    if head is not None:
        cfg["classifier"] = head
    return make_config(architecture=GROUPED_ARCH, num_classes=num_classes, num_features=_num_features(model, head),
                       global_pool=_global_pool(model), model_args=spec.to_model_args(), pretrained_cfg=cfg)
