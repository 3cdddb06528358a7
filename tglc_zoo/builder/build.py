"""The one builder: resolve the config, check it, build the model, load its weights.

:func:`build_model_with_cfg` (timm's function of that name is the model) runs, for any
:class:`~tglc_zoo.builder.arch.Architecture`:

1. :func:`resolve_config` — the pretrained config (the name's tag, timm's ``pretrained_cfg`` /
   ``pretrained_cfg_overlay``) and, when weights are asked for, the checkpoint, what it says about
   itself and what the user asked to adapt (:func:`~tglc_zoo.builder.plan.plan_load`);
2. for a build whose config comes from a file (a checkpoint, or the ``config.json`` of timm's
   ``local-dir:``/``hf-hub:`` routes): the guard — the model built on the meta device within the
   :class:`~tglc_zoo.builder.limits.Limits`, then checked against the checkpoint's tensor shapes, so a
   config can make nothing large be allocated that its weights do not hold;
3. the model itself (``arch.build``), loaded strictly (:func:`~tglc_zoo.builder.load.load_pretrained_into`);

and, for ``features_only=True``, wraps it in one of timm's feature extractors.

What a name builds: the resolved pretrained config describes the model (the built model's own
``pretrained_cfg`` is that config, updated for its real classes and input channels). An untagged name
resolves to its architecture's config, which is also timm's default config of the name; ``name.tag`` to
the tag's. ``pretrained=True`` on an untagged name (with no weights named by ``pretrained_cfg_overlay``)
means the name's first tag with weights, in manifest order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..archs import VARIANTS
from ..checkpoint import ResolvedCheckpoint, read_state_dict, tensor_shapes
from ..errors import ModelArgumentError
from ..models.features import wrap_features
from .arch import Architecture, ZooArchitecture
from .guard import building, meta_build
from .load import LoadReport, check_fits, load_pretrained_into, plan_state_dict
from .plan import merge_checkpoint_cfg, plan_load
from .request import BuildRequest
from .source import resolve_pretrained, weights_beside

__all__ = ["ResolvedConfig", "build_model", "build_model_with_cfg", "load_checkpoint_into", "resolve_config"]

_HEAD_STEM = ("num_classes", "in_chans")


@dataclass
class ResolvedConfig:
    """Step 1's result: the pretrained config, the model's arguments, and the checkpoint to load (``None``:
    random init) with the adaptations the user asked for."""

    cfg: dict[str, Any]
    checkpoint: ResolvedCheckpoint | None
    model_kwargs: dict[str, Any]
    adapt_head: bool = False
    adapt_stem: bool = False
    reference: ResolvedCheckpoint | None = None  # the weights that bound the build (the checkpoint, or the
    #                                               weights beside a config read without them)


def resolve_config(arch: Architecture, req: BuildRequest) -> ResolvedConfig:
    """The model's pretrained config and arguments, and the checkpoint its weights come from; the
    checkpoint's tensors decide ``num_classes``/``in_chans`` unless the user asked for others."""
    cfg = arch.resolve_cfg(req)
    requested = dict(req.model_kwargs)
    if not req.pretrained:
        model_kwargs = arch.model_kwargs(cfg, None, requested, "call")
        # a config read without its weights: bounded by the weights beside it, unless the caller changes the
        # architecture it describes (then the caller, not the config, decides)
        beside = None if req.overrides else weights_beside(req.config_source, cache_dir=req.cache_dir)
        if beside is None:
            return ResolvedConfig(cfg, None, model_kwargs)
        # built as the config says, and bounded by the weights it came with: their plan decides only what
        # the check may ignore (a head or stem the user asked to differ)
        plan = plan_load(beside, cfg, model_kwargs, {k: requested[k] for k in _HEAD_STEM if k in requested})
        return ResolvedConfig(cfg, None, model_kwargs, plan.adapt_head, plan.adapt_stem, beside)
    checkpoint = resolve_pretrained(arch.name, req.pretrained, cfg, cache_dir=req.cache_dir)
    cfg = merge_checkpoint_cfg(cfg, checkpoint)
    saved = dict((checkpoint.config or {}).get("model_args", {}))
    model_kwargs = arch.model_kwargs(cfg, saved, {k: v for k, v in requested.items() if k not in _HEAD_STEM},
                                     f"{checkpoint.origin}'s config")
    plan = plan_load(checkpoint, cfg, model_kwargs, {k: requested[k] for k in _HEAD_STEM if k in requested})
    return ResolvedConfig(cfg, checkpoint, plan.model_kwargs, plan.adapt_head, plan.adapt_stem, checkpoint)


def _plan(model: nn.Module, resolved: ResolvedConfig, shapes: dict[str, Any]) -> LoadReport:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return plan_state_dict({k: v.shape for k, v in model.state_dict().items()}, shapes, cfg,
                           num_classes=getattr(model, "num_classes", "?"), adapt_head=resolved.adapt_head,
                           adapt_stem=resolved.adapt_stem)


def _config_key(req: BuildRequest, checkpoint: ResolvedCheckpoint | None) -> str | None:
    """What identifies the config that drives this build: the checkpoint's folder, or timm's config source."""
    if checkpoint is not None:
        return str(checkpoint.weights.resolve().parent)
    return req.config_source


def load_checkpoint_into(model: nn.Module, resolved: ResolvedCheckpoint, *, map_location: str | torch.device = "cpu",
                         strict: bool = True, adapt_head: bool = False, adapt_stem: bool = False) -> LoadReport:
    """Read the checkpoint's tensors and load them strictly into ``model`` (head/stem adapted only when asked)."""
    return load_pretrained_into(model, read_state_dict(resolved, map_location=map_location), strict=strict,
                                adapt_head=adapt_head, adapt_stem=adapt_stem)


def build_model_with_cfg(arch: Architecture, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """Build ``arch`` as a ``create_model`` call asks (timm semantics; see the module docstring).

    Besides the model's own arguments, ``kwargs`` take timm's ``pretrained_cfg``, ``pretrained_cfg_overlay``,
    ``cache_dir``, ``features_only`` (with ``out_indices``, ``feature_cls``), and the limits ``max_params``,
    ``max_modules``, ``trust_base`` (:mod:`tglc_zoo.builder.limits`).
    """
    req = BuildRequest.from_call(arch.name, pretrained, kwargs)
    if req.feature_cfg is not None and not arch.features:
        raise ModelArgumentError(f"{arch.name} cannot be built as a feature backbone (features_only=True)")
    resolved = resolve_config(arch, req)
    checkpoint = resolved.checkpoint
    origin = checkpoint.origin if checkpoint is not None else req.config_source or arch.name
    arch.validate(resolved.model_kwargs, origin, req.limits)

    def build() -> nn.Module:
        return arch.build(resolved.cfg, dict(resolved.model_kwargs))

    with req.limits.active(), building(_config_key(req, checkpoint) if req.from_config else None, origin):
        if req.from_config:
            meta = meta_build(build, req.limits, origin)
            if resolved.reference is not None:  # before the real build: nothing its weights do not hold
                check_fits(_plan(meta, resolved, tensor_shapes(resolved.reference)), arch.name)
            del meta
        model = build()
    if checkpoint is not None:
        load_checkpoint_into(model, checkpoint, adapt_head=resolved.adapt_head, adapt_stem=resolved.adapt_stem)
    if req.feature_cfg is not None:
        model = wrap_features(model, **req.feature_cfg)
    return model


def build_model(name: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """Build the registered zoo model ``name`` (no tag): :func:`build_model_with_cfg` of its architecture."""
    return build_model_with_cfg(ZooArchitecture(VARIANTS[name]), pretrained, **kwargs)
