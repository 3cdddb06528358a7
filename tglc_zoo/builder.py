"""The one builder behind every model name: resolve the config, build the model, load its weights.

:func:`build_model` runs three separate steps:

1. :func:`resolve_config` — the pretrained config (the name's tag, timm's ``pretrained_cfg`` /
   ``pretrained_cfg_overlay``) and, when weights are asked for, the checkpoint and what it says about
   itself;
2. :func:`instantiate` — the model class of the architecture with the merged arguments, its
   ``pretrained_cfg`` and ``model_args`` set;
3. loading the checkpoint strictly (:func:`tglc_zoo.loading.load_checkpoint_into`);

and, for ``features_only=True``, wraps the loaded model in one of timm's feature extractors
(:func:`tglc_zoo.models.features.wrap_features`).

What a name builds: the resolved pretrained config describes the model (the built model's own
``pretrained_cfg`` is that config, updated for its real classes and input channels). An untagged name
resolves to its architecture's config, which is also timm's default config of the name; ``name.tag`` to
the tag's. ``pretrained=True`` on an untagged name (with no
weights named by ``pretrained_cfg_overlay``) means the name's first tag with weights, in manifest order —
the same model as ``create_model("name.<that tag>", pretrained=True)``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timm.models import resolve_pretrained_cfg
from torch import nn

from .archs import VARIANTS, Variant, arch_default_cfg, pool_size_for
from .checkpoint import ResolvedCheckpoint
from .errors import ConfigError, ModelArgumentError, UnknownChoiceError
from .loading import load_checkpoint_into, merge_checkpoint_cfg, plan_load, resolve_pretrained
from .models._adapt import adapt_channel_stats
from .models.features import wrap_features
from .weights import manifest_cfgs, tags_of

__all__ = ["BuildRequest", "ResolvedConfig", "build_model", "default_weights_tag", "resolve_config", "instantiate"]

FEATURE_KWARGS = ("out_indices", "feature_cls", "flatten_sequential")
"""timm's feature-extraction keywords, taken out of the model's arguments into ``feature_cfg``."""


@dataclass
class BuildRequest:
    """What a ``create_model`` call asks for, with timm's keyword arguments taken out of the model's."""

    variant: Variant
    pretrained: Any = False
    pretrained_cfg: Any = None            # a tag, a dict or a timm PretrainedCfg
    overlay: dict[str, Any] | None = None
    cache_dir: str | Path | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    feature_cfg: dict[str, Any] | None = None  # features_only=True: the feature extractor's options

    @classmethod
    def from_call(cls, name: str, pretrained: Any, kwargs: dict[str, Any]) -> BuildRequest:
        kwargs = dict(kwargs)
        req = cls(VARIANTS[name], pretrained, kwargs.pop("pretrained_cfg", None),
                  kwargs.pop("pretrained_cfg_overlay", None), kwargs.pop("cache_dir", None))
        kwargs.pop("pretrained_model_args", None)  # timm's hf-hub: route passes the config's model_args here too
        features_only = kwargs.pop("features_only", False)
        feature_cfg = dict(kwargs.pop("feature_cfg", None) or {})
        feature_cfg.update({k: kwargs.pop(k) for k in FEATURE_KWARGS if k in kwargs})
        if features_only:
            req.feature_cfg = feature_cfg
        elif feature_cfg:
            raise ModelArgumentError(f"{sorted(feature_cfg)} configure a feature backbone and need features_only=True "
                                     f"(create_model({name!r}, features_only=True, ...))")
        req.model_kwargs = kwargs
        if isinstance(pretrained, str) and f"{name}.{pretrained}" in manifest_cfgs():
            req.pretrained, req.pretrained_cfg = True, pretrained  # a tag of this model
        return req


@dataclass
class ResolvedConfig:
    """Step 1's result: the pretrained config, the model's arguments, and the checkpoint to load (``None``:
    random init) with the adaptations the user asked for."""

    cfg: dict[str, Any]
    checkpoint: ResolvedCheckpoint | None
    model_kwargs: dict[str, Any]
    adapt_head: bool = False
    adapt_stem: bool = False


def check_model_kwargs(variant: Variant, kwargs: dict[str, Any], origin: str) -> None:
    """Refuse arguments the architecture's model class does not take, naming them and the valid ones."""
    spec = variant.spec
    params = inspect.signature(spec.model_cls.__init__).parameters
    valid = sorted(n for n in params if n != "self" and n not in spec.kwargs)
    unknown = sorted(k for k in kwargs if k not in valid)
    if unknown:
        error = ConfigError if origin != "call" else UnknownChoiceError
        where = "" if origin == "call" else f" in {origin}"
        raise error(f"{variant.name} does not take the argument(s) {unknown}{where}; valid arguments: {valid}")


def default_weights_tag(name: str) -> str | None:
    """The tag ``pretrained=True`` loads for the untagged ``name``: its first tag with weights in manifest order."""
    tags = tags_of(name)
    return tags[0].rpartition(".")[2] if tags else None


def resolve_config(req: BuildRequest) -> ResolvedConfig:
    """The model's pretrained config and arguments, and the checkpoint its weights come from.

    Which config describes the model: the requested tag (or timm's ``pretrained_cfg``), else — for
    ``pretrained=True`` — the name's default tag, else the architecture's own config. The checkpoint then
    says what it is about (:func:`tglc_zoo.loading.plan_load`: the weights win unless the user asked for
    another ``num_classes``/``in_chans``).
    """
    v = req.variant
    pretrained_cfg = req.pretrained_cfg
    if pretrained_cfg is None and req.pretrained is True and not any((req.overlay or {}).get(k) for k in
                                                                      ("file", "url", "hf_hub_id")):
        pretrained_cfg = default_weights_tag(v.name)  # timm's default cfg is the architecture's: no weights
    if pretrained_cfg is None and req.pretrained is not True:
        # an untrained model, or weights from a given source, describe the architecture's data, not a tag's
        pretrained_cfg = arch_default_cfg(v)
    cfg = resolve_pretrained_cfg(v.name, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=req.overlay).to_dict()
    requested = dict(req.model_kwargs)
    check_model_kwargs(v, requested, "call")
    model_kwargs = dict(conv_type=v.conv_type, groups=v.groups, num_classes=cfg.get("num_classes", 10))
    if not req.pretrained:
        return ResolvedConfig(cfg, None, {**model_kwargs, **requested})
    checkpoint = resolve_pretrained(v.name, req.pretrained, cfg, cache_dir=req.cache_dir)
    saved_args = dict((checkpoint.config or {}).get("model_args", {}))
    check_model_kwargs(v, saved_args, f"{checkpoint.origin}'s config")
    cfg = merge_checkpoint_cfg(cfg, checkpoint)
    model_kwargs.update(saved_args)  # saved arguments are the defaults ...
    model_kwargs.update({k: val for k, val in requested.items() if k not in ("num_classes", "in_chans")})
    plan = plan_load(checkpoint, cfg, model_kwargs,  # ... and the weights decide num_classes / in_chans
                     {k: requested[k] for k in ("num_classes", "in_chans") if k in requested})
    return ResolvedConfig(cfg, checkpoint, plan.model_kwargs, plan.adapt_head, plan.adapt_stem)


def instantiate(variant: Variant, cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> nn.Module:
    """Build the architecture with ``model_kwargs``; set its ``pretrained_cfg`` (for its real input) and
    ``model_args`` (what rebuilds it)."""
    spec = variant.spec
    model = spec.model_cls(**spec.kwargs, **model_kwargs)
    in_chans = model_kwargs.get("in_chans", 3)
    cfg = dict(cfg)
    input_size = (in_chans, *cfg["input_size"][1:])
    cfg.update(architecture=variant.name, num_classes=model.num_classes, input_size=input_size,
               pool_size=pool_size_for(input_size, model.output_stride),
               **{k: adapt_channel_stats(cfg[k], in_chans) for k in ("mean", "std") if cfg.get(k)})
    model.pretrained_cfg = cfg
    model.model_args = {k: val for k, val in model_kwargs.items() if k != "num_classes"}
    model.model_args.setdefault("in_chans", in_chans)
    return model


def build_model(name: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` (no tag): the three steps of this module, then the feature wrapper."""
    req = BuildRequest.from_call(name, pretrained, kwargs)
    resolved = resolve_config(req)
    model = instantiate(VARIANTS[name], resolved.cfg, resolved.model_kwargs)
    if resolved.checkpoint is not None:
        load_checkpoint_into(model, resolved.checkpoint, adapt_head=resolved.adapt_head,
                             adapt_stem=resolved.adapt_stem)
    if req.feature_cfg is not None:
        model = wrap_features(model, **req.feature_cfg)
    return model
