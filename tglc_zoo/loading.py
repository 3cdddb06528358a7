"""Pretrained weights for the builder: which checkpoint ``pretrained=...`` names, and loading it.

``pretrained`` may be ``True`` (the pretrained cfg's own source: a manifest tag, timm's
``local-dir:``/``hf-hub:`` prefixes, or ``pretrained_cfg_overlay=dict(file=...)``), any
:func:`tglc_zoo.checkpoint.resolve_source` source, or an already resolved checkpoint.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from timm.models import PretrainedCfg
from torch import nn

from .checkpoint import HF_PREFIX, ResolvedCheckpoint, read_state_dict, resolve_source
from .checkpoint.config import LOCATION_KEYS
from .errors import ConfigError
from .models._adapt import LoadReport, load_pretrained_into
from .weights import load_manifest, tags_of

__all__ = ["PRETRAINED_CFG_FIELDS", "resolve_pretrained", "merge_checkpoint_cfg", "load_checkpoint_into"]

PRETRAINED_CFG_FIELDS = frozenset(f.name for f in dataclasses.fields(PretrainedCfg))


def _source_from_cfg(variant: str, cfg: dict[str, Any]) -> str:
    """The weights location a pretrained cfg names, in timm's order of precedence."""
    if cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
        return HF_PREFIX + cfg["hf_hub_id"]
    for key in ("file", "url"):
        if cfg.get(key):
            return str(cfg[key])
    if cfg.get("hf_hub_id"):
        return HF_PREFIX + cfg["hf_hub_id"]
    tags = tags_of(variant)
    raise ConfigError(f"no pretrained weights are available for {variant!r}; tags with weights: {tags or 'none'} "
                      "(see tglc_zoo.list_models(pretrained=True)); or pass pretrained=<folder, .safetensors file, "
                      "URL or Hugging Face repo id>")


def resolve_pretrained(variant: str, pretrained: Any, cfg: dict[str, Any], *,
                       cache_dir: str | Path | None = None) -> ResolvedCheckpoint:
    """Locate the checkpoint that ``pretrained`` names for model ``variant`` whose pretrained cfg is ``cfg``.

    ``True`` means the source in ``cfg`` (a tag's ``pretrained_cfg`` must already be resolved into ``cfg``).
    """
    if isinstance(pretrained, ResolvedCheckpoint):
        resolved = pretrained
    else:
        sha256 = None
        if pretrained is True:
            source = _source_from_cfg(variant, cfg)
            entry = load_manifest().get(f"{variant}.{cfg.get('tag')}") if cfg.get("tag") else None
            # the manifest's hash vouches for the manifest's own file only, not for any folder with that tag
            own = ({str(entry.get("file")), str(entry.get("url")), HF_PREFIX + str(entry.get("hf_hub_id"))}
                   if entry else set())
            if source in own:
                assert entry is not None  # ``own`` is empty without an entry
                sha256 = entry.get("sha256")
        elif isinstance(pretrained, (str, Path)):
            source = str(pretrained)
        else:
            raise ConfigError(f"pretrained={pretrained!r} is not understood; valid choices: False, True, a tag of "
                              f"{variant!r}, or a folder, .safetensors file, URL or Hugging Face repo id")
        resolved = resolve_source(source, cache_dir=cache_dir, sha256=sha256)
    arch = (resolved.config or {}).get("architecture")
    if arch is not None and arch != variant:
        raise ConfigError(f"{resolved.origin} holds a {arch!r} checkpoint, not {variant!r}; load it with "
                          f"tglc_zoo.from_pretrained({resolved.origin!r}) or create_model({arch!r}, ...)")
    return resolved


def merge_checkpoint_cfg(cfg: dict[str, Any], resolved: ResolvedCheckpoint) -> dict[str, Any]:
    """``cfg`` updated with what the checkpoint says about itself (input size, normalisation, labels, head)."""
    if not resolved.config:
        return cfg
    own = {k: v for k, v in resolved.config["pretrained_cfg"].items()
           if k in PRETRAINED_CFG_FIELDS and k not in LOCATION_KEYS}
    return {**cfg, **own, "num_classes": resolved.config["num_classes"]}


def load_checkpoint_into(model: nn.Module, resolved: ResolvedCheckpoint, *,
                         map_location: str | torch.device = "cpu", strict: bool = True) -> LoadReport:
    """Read the checkpoint's tensors and load them (strictly, head/stem adapted) into ``model``."""
    return load_pretrained_into(model, read_state_dict(resolved, map_location=map_location), strict=strict)
