"""What a checkpoint says about the model it fits, reconciled with the user's request before building.

:func:`merge_checkpoint_cfg` takes the checkpoint's data fields (input size, normalisation, labels)
into the pretrained config; :func:`plan_load` decides ``num_classes`` and ``in_chans`` from the
config and the tensors' shapes (the weights win unless the user asked for others). Both read only
configs and a safetensors header: nothing is built and no tensor is loaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from timm.models import PretrainedCfg

from ..checkpoint import ResolvedCheckpoint, tensor_shapes
from ..checkpoint.config import LOCATION_KEYS
from ..errors import ConfigError

__all__ = ["PRETRAINED_CFG_FIELDS", "STRUCTURAL_CFG_KEYS", "CheckpointFacts", "LoadPlan", "checkpoint_facts",
           "merge_checkpoint_cfg", "plan_load"]

PRETRAINED_CFG_FIELDS = frozenset(f.name for f in dataclasses.fields(PretrainedCfg))
"""The fields of timm's ``PretrainedCfg``: the only keys a pretrained config may hold."""
STRUCTURAL_CFG_KEYS = ("classifier", "first_conv", "architecture")
"""Fields that describe the architecture, not the weights: a checkpoint may not change them."""


def merge_checkpoint_cfg(cfg: dict[str, Any], resolved: ResolvedCheckpoint) -> dict[str, Any]:
    """``cfg`` updated with what the checkpoint says about its data (input size, normalisation, labels).

    Structural fields (the classifier and stem names) stay the architecture's; a checkpoint whose config
    names others is an error, since they would change what ``forward`` computes. Where the architecture
    names none (a converted model, whose modules are its base's), the checkpoint's are taken.
    """
    if not resolved.config:
        return cfg
    ckpt_cfg = resolved.config["pretrained_cfg"]
    for key in ("classifier", "first_conv"):
        if key in ckpt_cfg and cfg.get(key) and ckpt_cfg[key] != cfg[key]:
            raise ConfigError(f"{resolved.origin}: its config names {key} {ckpt_cfg[key]!r}, but the architecture's "
                              f"{key} is {cfg[key]!r}; a checkpoint cannot change the model's structure")
    own = {k: v for k, v in ckpt_cfg.items() if k in PRETRAINED_CFG_FIELDS and k not in LOCATION_KEYS
           and k != "architecture" and (k not in STRUCTURAL_CFG_KEYS or not cfg.get(k))}
    return {**cfg, **own, "num_classes": resolved.config["num_classes"]}


@dataclass(frozen=True)
class CheckpointFacts:
    """What a checkpoint's tensors say about the model they fit (``None`` where the tensor is absent)."""

    num_classes: int | None    # rows of the classifier weight
    num_features: int | None   # its columns: the body's output features
    in_chans: int | None       # input channels of the stem conv


def checkpoint_facts(resolved: ResolvedCheckpoint, classifier: str | None, first_conv: str | None) -> CheckpointFacts:
    """Read the classifier and stem shapes from the checkpoint (a safetensors header: no tensor is loaded)."""
    shapes = tensor_shapes(resolved)
    fc = shapes.get(f"{classifier}.weight") if classifier else None
    stem = shapes.get(f"{first_conv}.weight") if first_conv else None
    return CheckpointFacts(fc[0] if fc is not None and len(fc) == 2 else None,
                           fc[1] if fc is not None and len(fc) == 2 else None,
                           stem[1] if stem is not None and len(stem) == 4 else None)


@dataclass
class LoadPlan:
    """The arguments the model is built with, and which of the checkpoint's parts the user asked to change."""

    model_kwargs: dict[str, Any]
    adapt_head: bool
    adapt_stem: bool


def plan_load(resolved: ResolvedCheckpoint, cfg: dict[str, Any], model_kwargs: dict[str, Any],
              requested: dict[str, Any]) -> LoadPlan:
    """Reconcile the checkpoint's config, its tensors and the user's request, before building anything.

    The weights win: ``num_classes`` and ``in_chans`` are the checkpoint's unless the user asked for
    others (``requested``), and then the head is re-initialised or the stem adapted. A config that
    contradicts its own tensors is an error.
    """
    facts = checkpoint_facts(resolved, cfg.get("classifier"), cfg.get("first_conv"))
    config = resolved.config or {}
    claims = {"num_classes": config.get("num_classes"), "num_features": config.get("num_features"),
              "in_chans": config.get("model_args", {}).get("in_chans")}
    for key, claimed in claims.items():
        actual = getattr(facts, key)
        if claimed is not None and actual is not None and claimed != actual:
            raise ConfigError(f"{resolved.origin}: its config says {key}={claimed} but its weights have {actual} "
                              f"({'classifier' if key != 'in_chans' else 'stem'} "
                              f"{cfg.get('classifier') if key != 'in_chans' else cfg.get('first_conv')!r})")
    kwargs = dict(model_kwargs)
    ckpt = {"num_classes": claims["num_classes"] if claims["num_classes"] is not None else facts.num_classes,
            "in_chans": claims["in_chans"] if claims["in_chans"] is not None else facts.in_chans}
    adapt = {}
    for key, value in ckpt.items():
        if key in requested:  # asked for: a fresh head / an adapted stem where the checkpoint's differ or lack
            adapt[key] = value is None or requested[key] != value
            kwargs[key] = requested[key]
        elif value is not None:
            adapt[key] = False
            kwargs[key] = value
    return LoadPlan(kwargs, adapt.get("num_classes", False), adapt.get("in_chans", False))
