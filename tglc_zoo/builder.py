"""The one builder behind every model name: resolve the config, build the model, load its weights.

:func:`build_model` runs three separate steps:

1. :func:`resolve_config` — the pretrained config (the name's tag, timm's ``pretrained_cfg`` /
   ``pretrained_cfg_overlay``) and, when weights are asked for, the checkpoint and what it says about
   itself;
2. :func:`instantiate` — the model class of the architecture with the merged arguments, its
   ``pretrained_cfg`` and ``model_args`` set;
3. loading the checkpoint strictly (:func:`tglc_zoo.loading.load_checkpoint_into`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timm.models import resolve_pretrained_cfg
from torch import nn

from .archs import VARIANTS, Variant, arch_default_cfg
from .checkpoint import ResolvedCheckpoint
from .loading import load_checkpoint_into, merge_checkpoint_cfg, resolve_pretrained
from .models._adapt import adapt_channel_stats
from .weights import manifest_cfgs

__all__ = ["BuildRequest", "ResolvedConfig", "build_model", "resolve_config", "instantiate"]


@dataclass
class BuildRequest:
    """What a ``create_model`` call asks for, with timm's keyword arguments taken out of the model's."""

    variant: Variant
    pretrained: Any = False
    pretrained_cfg: Any = None            # a tag, a dict or a timm PretrainedCfg
    overlay: dict[str, Any] | None = None
    cache_dir: str | Path | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_call(cls, name: str, pretrained: Any, kwargs: dict[str, Any]) -> BuildRequest:
        kwargs = dict(kwargs)
        req = cls(VARIANTS[name], pretrained, kwargs.pop("pretrained_cfg", None),
                  kwargs.pop("pretrained_cfg_overlay", None), kwargs.pop("cache_dir", None))
        kwargs.pop("pretrained_model_args", None)  # timm's hf-hub: route passes the config's model_args here too
        for bad in ("features_only", "drop_path_rate"):
            if kwargs.get(bad):
                raise ValueError(f"{bad}={kwargs[bad]!r} is not supported by {name}")
            kwargs.pop(bad, None)
        req.model_kwargs = kwargs
        if isinstance(pretrained, str) and f"{name}.{pretrained}" in manifest_cfgs():
            req.pretrained, req.pretrained_cfg = True, pretrained  # a tag of this model
        return req


@dataclass
class ResolvedConfig:
    """Step 1's result: the pretrained config and the checkpoint to load (``None``: random init)."""

    cfg: dict[str, Any]
    checkpoint: ResolvedCheckpoint | None
    model_kwargs: dict[str, Any]


def resolve_config(req: BuildRequest) -> ResolvedConfig:
    """The model's pretrained config and arguments, and the checkpoint its weights come from."""
    v = req.variant
    pretrained_cfg = req.pretrained_cfg
    if not req.pretrained and pretrained_cfg is None:
        # an untrained model describes its architecture's data, not the default tag's
        pretrained_cfg = arch_default_cfg(v)
    cfg = resolve_pretrained_cfg(v.name, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=req.overlay).to_dict()
    kwargs = dict(req.model_kwargs)
    checkpoint = None
    if req.pretrained:
        checkpoint = resolve_pretrained(v.name, req.pretrained, cfg, cache_dir=req.cache_dir)
        cfg = merge_checkpoint_cfg(cfg, checkpoint)
        kwargs = {**(checkpoint.config or {}).get("model_args", {}), **kwargs}  # saved arguments are defaults
    model_kwargs = dict(conv_type=v.conv_type, groups=v.groups, num_classes=cfg.get("num_classes", 10))
    model_kwargs.update(kwargs)
    if req.pretrained:
        # unless asked otherwise, a pretrained model keeps the checkpoint's input channels;
        # a different num_classes / in_chans is adapted while loading
        model_kwargs.setdefault("in_chans", cfg.get("input_size", (3,))[0])
    return ResolvedConfig(cfg, checkpoint, model_kwargs)


def instantiate(variant: Variant, cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> nn.Module:
    """Build the architecture with ``model_kwargs``; set its ``pretrained_cfg`` (for its real input) and
    ``model_args`` (what rebuilds it)."""
    spec = variant.spec
    model = spec.model_cls(**spec.kwargs, **model_kwargs)
    in_chans = model_kwargs.get("in_chans", 3)
    cfg = dict(cfg)
    cfg.update(architecture=variant.name, num_classes=model.num_classes,
               input_size=(in_chans, *cfg["input_size"][1:]),
               **{k: adapt_channel_stats(cfg[k], in_chans) for k in ("mean", "std") if cfg.get(k)})
    model.pretrained_cfg = cfg
    model.model_args = {k: val for k, val in model_kwargs.items() if k != "num_classes"}
    model.model_args.setdefault("in_chans", in_chans)
    return model


def build_model(name: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` (no tag): the three steps of this module."""
    resolved = resolve_config(BuildRequest.from_call(name, pretrained, kwargs))
    model = instantiate(VARIANTS[name], resolved.cfg, resolved.model_kwargs)
    if resolved.checkpoint is not None:
        load_checkpoint_into(model, resolved.checkpoint)
    return model
