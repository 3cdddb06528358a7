"""Pretrained weights for the builder: which checkpoint ``pretrained=...`` names, and loading it.

``pretrained`` may be ``True`` (the pretrained cfg's own source: a manifest tag, timm's
``local-dir:``/``hf-hub:`` prefixes, or ``pretrained_cfg_overlay=dict(file=...)``), any
:func:`tglc_zoo.checkpoint.resolve_source` source, or an already resolved checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.models import PretrainedCfg
from torch import nn

from .checkpoint import HF_PREFIX, ResolvedCheckpoint, read_state_dict, resolve_source, tensor_shapes
from .checkpoint.config import LOCATION_KEYS
from .errors import CheckpointNotFoundError, ConfigError
from .models._adapt import LoadReport, load_pretrained_into
from .weights import load_manifest, tags_of

__all__ = ["PRETRAINED_CFG_FIELDS", "CheckpointFacts", "LoadPlan", "checkpoint_facts", "resolve_pretrained",
           "merge_checkpoint_cfg", "plan_load", "load_checkpoint_into"]

PRETRAINED_CFG_FIELDS = frozenset(f.name for f in dataclasses.fields(PretrainedCfg))


def _source_from_cfg(variant: str, cfg: dict[str, Any]) -> str:
    """The weights location a pretrained cfg names: an existing local file or mirror first, then the Hub repo,
    then a URL (timm's order, with a mirror that is not on this machine skipped)."""
    if cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
        return HF_PREFIX + cfg["hf_hub_id"]
    file = cfg.get("file")
    if file and (Path(str(file)).exists() or not (cfg.get("hf_hub_id") or cfg.get("url"))):
        return str(file)
    if cfg.get("hf_hub_id"):
        return HF_PREFIX + cfg["hf_hub_id"]
    if cfg.get("url"):
        return str(cfg["url"])
    tags = tags_of(variant)
    raise ConfigError(f"no pretrained weights are available for {variant!r}; tags with weights: {tags or 'none'} "
                      "(see tglc_zoo.list_models(pretrained=True)); or pass pretrained=<folder, .safetensors file, "
                      "URL or Hugging Face repo id>")


def _not_reachable(tag: str, repo_id: str, error: Exception) -> CheckpointNotFoundError:
    """The error for a tag whose Hub repo is neither in the cache nor reachable: what, where, and how to fix it."""
    from huggingface_hub import constants

    state = ("offline (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE
             else f"could not be reached at {constants.ENDPOINT}")
    return CheckpointNotFoundError(
        f"pretrained tag {tag!r}: its weights live in the Hugging Face repo {repo_id!r}, which is not in the cache "
        f"({constants.HF_HUB_CACHE}) and {state}. To fix: download it once while online (unset HF_HUB_OFFLINE, "
        f"or `huggingface-cli download {repo_id}`), point HF_ENDPOINT at a mirror that has it, or load from a "
        f"clone of tglc_zoo, whose hub/ folder holds the weights. ({error})")


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
        try:
            resolved = resolve_source(source, cache_dir=cache_dir, sha256=sha256)
        except CheckpointNotFoundError as e:
            if pretrained is True and source.startswith(HF_PREFIX) and cfg.get("tag"):
                raise _not_reachable(f"{variant}.{cfg['tag']}", source.removeprefix(HF_PREFIX), e) from None
            raise
    arch = (resolved.config or {}).get("architecture")
    if arch is not None and arch != variant:
        raise ConfigError(f"{resolved.origin} holds a {arch!r} checkpoint, not {variant!r}; load it with "
                          f"tglc_zoo.from_pretrained({resolved.origin!r}) or create_model({arch!r}, ...)")
    return resolved


# fields that describe the architecture, not the weights: a checkpoint may not change them
STRUCTURAL_CFG_KEYS = ("classifier", "first_conv", "architecture")


def merge_checkpoint_cfg(cfg: dict[str, Any], resolved: ResolvedCheckpoint) -> dict[str, Any]:
    """``cfg`` updated with what the checkpoint says about its data (input size, normalisation, labels).

    Structural fields (the classifier and stem names) stay the architecture's; a checkpoint whose config
    names others is an error, since they would change what ``forward`` computes.
    """
    if not resolved.config:
        return cfg
    ckpt_cfg = resolved.config["pretrained_cfg"]
    for key in ("classifier", "first_conv"):
        if key in ckpt_cfg and cfg.get(key) and ckpt_cfg[key] != cfg[key]:
            raise ConfigError(f"{resolved.origin}: its config names {key} {ckpt_cfg[key]!r}, but the architecture's "
                              f"{key} is {cfg[key]!r}; a checkpoint cannot change the model's structure")
    own = {k: v for k, v in ckpt_cfg.items()
           if k in PRETRAINED_CFG_FIELDS and k not in LOCATION_KEYS and k not in STRUCTURAL_CFG_KEYS}
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
    contradicts its own tensors is an error. Everything here reads shapes only, so an absurd config
    (``num_classes=10**9``) is refused before any memory is allocated for it.
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


def load_checkpoint_into(model: nn.Module, resolved: ResolvedCheckpoint, *, map_location: str | torch.device = "cpu",
                         strict: bool = True, adapt_head: bool = False, adapt_stem: bool = False) -> LoadReport:
    """Read the checkpoint's tensors and load them strictly into ``model`` (head/stem adapted only when asked)."""
    return load_pretrained_into(model, read_state_dict(resolved, map_location=map_location), strict=strict,
                                adapt_head=adapt_head, adapt_stem=adapt_stem)
