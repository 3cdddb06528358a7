"""Converted models as checkpoints: the generic timm architecture :data:`GROUPED_ARCH` that rebuilds them.

``save_pretrained`` writes a converted model (of any base) as a checkpoint folder whose ``config.json``
names ``"architecture": "tglc_grouped"`` and whose ``model_args`` are the :class:`~.spec.GroupingSpec`.
:func:`tglc_grouped` is registered in timm's registry (through its public ``register_model``), so
``timm.create_model("local-dir:<folder>", pretrained=True)`` and ``hf-hub:`` rebuild the model — base
built with random init, the listed convolutions replaced — and load the weights;
:func:`tglc_zoo.from_pretrained` reaches the same code through :func:`load_grouped`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
from timm.models import PretrainedCfg, register_model
from torch import nn

from ..checkpoint import ResolvedCheckpoint, make_config
from ..loading import PRETRAINED_CFG_FIELDS, load_checkpoint_into, plan_load, resolve_pretrained
from .base import TORCHVISION_PREFIX, build_base, classifier_name
from .spec import GROUPED_ARCH, ConversionError, GroupingSpec
from .surgery import graft

__all__ = ["GROUPED_ARCH", "build_grouped", "tglc_grouped", "load_grouped", "grouped_checkpoint_config",
           "is_grouped"]


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


def _cfg_dict(cfg: Any, overlay: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(cfg, PretrainedCfg):
        cfg = cfg.to_dict()
    out = dict(cfg) if isinstance(cfg, dict) else {}
    return {**out, **(overlay or {})}


def load_grouped(resolved: ResolvedCheckpoint, **requested: Any) -> nn.Module:
    """Rebuild the converted model a resolved checkpoint describes and load its weights strictly.

    ``requested`` may hold ``num_classes`` (a fresh head) and ``in_chans`` (an adapted stem), as for
    :func:`tglc_zoo.from_pretrained`; other keys are an error.
    """
    config = resolved.config or {}
    unknown = sorted(set(requested) - {"num_classes", "in_chans"})
    if unknown:
        raise ConversionError(f"{resolved.origin}: a converted ({GROUPED_ARCH}) checkpoint takes num_classes and "
                              f"in_chans only; got {unknown} (its structure is fixed by model_args)")
    spec = GroupingSpec.from_model_args(config.get("model_args", {}), origin=str(resolved.origin))
    cfg = {k: v for k, v in config.get("pretrained_cfg", {}).items() if k in PRETRAINED_CFG_FIELDS}
    plan = plan_load(resolved, cfg, {}, requested)  # checks the config against the tensors; what to adapt
    model = build_grouped(spec, cfg, **requested)  # the saved base_args hold the checkpoint's head and stem
    load_checkpoint_into(model, resolved, adapt_head=plan.adapt_head, adapt_stem=plan.adapt_stem)
    return model


def _pretrained_source(pretrained: Any, cfg: dict[str, Any], cache_dir: Any) -> ResolvedCheckpoint:
    return resolve_pretrained(GROUPED_ARCH, pretrained, cfg, cache_dir=cache_dir)


@register_model
def tglc_grouped(pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """A dense timm/torchvision CNN converted to GC / GC-2L, rebuilt from its grouping spec.

    Args:
        pretrained: ``False``; ``True`` (the weights the pretrained cfg names — timm's ``local-dir:`` and
            ``hf-hub:`` set it); or any :func:`tglc_zoo.from_pretrained` source.
        **kwargs: the grouping spec (``base``, ``base_args``, ``conv_type``, ``groups``, ``layers``,
            ``conv_kwargs``), ``num_classes`` / ``in_chans`` (a new head / adapted stem when loading), and
            timm's ``pretrained_cfg``, ``pretrained_cfg_overlay`` and ``cache_dir``.
    """
    cfg = _cfg_dict(kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None))
    cache_dir = kwargs.pop("cache_dir", None)
    kwargs.pop("pretrained_model_args", None)  # timm's copy of the config's model_args
    requested = {k: kwargs.pop(k) for k in ("num_classes", "in_chans") if k in kwargs}
    spec = GroupingSpec.from_model_args(kwargs, origin=GROUPED_ARCH)
    if not pretrained:
        return build_grouped(spec, cfg or None, **requested)
    resolved = _pretrained_source(pretrained, cfg, cache_dir)
    if resolved.config is None:  # a bare weights file: the spec given here describes it
        model = build_grouped(spec, cfg or None, **requested)
        load_checkpoint_into(model, resolved)
        return model
    # timm passes the saved num_classes back to us: only a value that differs from the weights' is a request
    return load_grouped(resolved, **requested)


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
