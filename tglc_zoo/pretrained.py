"""``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` / ``pretrained_metrics``.

A checkpoint is a folder — ``config.json`` (timm layout), ``model.safetensors`` (config repeated in
its metadata) and ``README.md`` (Hugging Face model card) — that loads through this module, timm's
``local-dir:``/``hf-hub:`` prefixes, ``torch.hub`` (``hubconf.py``) and the Hugging Face Hub.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from .builder import PRETRAINED_CFG_FIELDS
from .checkpoint import make_config, render_model_card, upload_checkpoint_folder, write_checkpoint_folder
from .convert.rebuild import grouped_checkpoint_config, is_grouped
from .models._base import ZooModel
from .registry import create_model_from_source
from .util.unwrap import unwrap_model
from .weights import load_manifest

_logger = logging.getLogger(__name__)

__all__ = ["checkpoint_config", "from_pretrained", "pretrained_metrics", "push_to_hub", "save_pretrained"]


def checkpoint_config(model: nn.Module) -> dict[str, Any]:
    """The ``config.json`` content describing ``model`` (a tglc_zoo model, or one converted by surgery)."""
    if is_grouped(model):  # any CNN converted by tglc_zoo.convert: the generic architecture and its spec
        return grouped_checkpoint_config(model)
    for attr in ("pretrained_cfg", "model_args", "num_classes", "num_features"):
        if not hasattr(model, attr):
            raise TypeError(f"{type(model).__name__} lacks {attr!r}; save_pretrained takes models built by "
                            "tglc_zoo.create_model")
    zoo = cast(ZooModel, model)  # it has the attributes just checked
    # config.json must load through timm too, whose PretrainedCfg refuses fields it does not know
    cfg = {k: v for k, v in zoo.pretrained_cfg.items() if k in PRETRAINED_CFG_FIELDS}
    return make_config(architecture=cfg["architecture"], num_classes=zoo.num_classes,
                       num_features=zoo.num_features, global_pool=getattr(model, "global_pool", "avg"),
                       model_args=zoo.model_args, pretrained_cfg=cfg)


def save_pretrained(model: nn.Module, directory: str | os.PathLike[str], *, metrics: Mapping[str, float] | None = None,
                    dataset: str | None = None, **card_fields: Any) -> Path:
    """Write ``model`` as a checkpoint folder (atomically: a crash leaves the previous folder intact).

    Args:
        model: a model from :func:`tglc_zoo.create_model` (or :func:`from_pretrained`).
        directory: the folder to create or replace (it may only hold checkpoint files).
        metrics: measured results for the model card, e.g. ``{"top1": 91.3}``.
        dataset: the dataset the weights were trained / measured on.
        **card_fields: more model-card fields: ``license``, ``base_model``, ``tags``, ``recipe``, ``dataset_name``,
            ``description``, ``model_name``.

    Returns:
        The absolute path of the folder.

    A model inside ``torch.compile`` or ``DistributedDataParallel``/``DataParallel`` is saved unwrapped (its
    own keys, not ``_orig_mod.``/``module.`` ones), with a log line.
    """
    model, wrappers = unwrap_model(model)
    if wrappers:
        _logger.info("saving the %s inside %s (the checkpoint holds its own keys)", type(model).__name__,
                     " inside ".join(wrappers))
    config = checkpoint_config(model)
    num_params = sum(p.numel() for p in model.parameters())
    card = render_model_card(config, metrics=metrics, dataset=dataset, num_params=num_params, **card_fields)
    with torch.no_grad():
        return write_checkpoint_folder(directory, model.state_dict(), config, card)


def from_pretrained(source: str | os.PathLike[str], *, num_classes: int | None = None, in_chans: int | None = None,
                    map_location: str | torch.device = "cpu", revision: str | None = None,
                    local_files_only: bool | None = None, cache_dir: str | os.PathLike[str] | None = None,
                    max_params: int | None = None, trust_base: bool | None = None,
                    **model_kwargs: Any) -> nn.Module:
    """Build the model a checkpoint describes and load its weights strictly.

    Args:
        source: a pretrained tag (``wrn16_4_gc2l_n4.fmnist``), a checkpoint folder, a ``.safetensors``
            file, an ``https://``/``file://`` URL of one, or a Hugging Face repo id (``org/name``,
            ``hf-hub:org/name``; a tag's repo ``tglc-zoo/<model>.<tag>`` loads from the in-repo mirror
            when it exists).
        num_classes: a new head size (the classifier is re-initialised; logged).
        in_chans: a new number of input channels (the stem is adapted; logged).
        map_location: device the model and its weights are placed on.
        revision: Hub branch, tag or commit.
        local_files_only: never download (``None``: huggingface_hub's default, ``HF_HUB_OFFLINE``).
        cache_dir: cache for Hub / URL downloads.
        max_params: the most parameters (and buffers) the checkpoint's config may ask for
            (default ``$TGLC_ZOO_MAX_PARAMS`` or 3e9; see docs/loading.md).
        trust_base: let a converted checkpoint's base spec name weights, files or remote bases.
        **model_kwargs: further model arguments (e.g. ``drop_rate``) overriding the checkpoint's.
    """
    target = {k: v for k, v in dict(num_classes=num_classes, in_chans=in_chans, max_params=max_params,
                                    trust_base=trust_base, **model_kwargs).items() if v is not None}
    model = create_model_from_source(source, revision=revision, local_files_only=local_files_only,
                                     cache_dir=cache_dir, **target)
    return model.to(map_location)


def push_to_hub(model_or_folder: nn.Module | str | os.PathLike[str], repo_id: str, *, private: bool = False,
                revision: str | None = None, commit_message: str = "Upload tglc_zoo checkpoint",
                token: str | None = None, **save_kwargs: Any) -> str:
    """Upload a checkpoint folder — or a model, saved first with :func:`save_pretrained` — to the Hub.

    Creates the repo (and ``revision`` as a branch) when missing, then uploads the folder's files in one
    commit. ``save_kwargs`` (``metrics``, ``dataset``, card fields) apply when a model is given.

    Returns:
        The URL of the commit.
    """
    upload: dict[str, Any] = dict(private=private, revision=revision, commit_message=commit_message, token=token)
    if isinstance(model_or_folder, nn.Module):
        with tempfile.TemporaryDirectory(prefix="tglc_zoo-push-") as tmp:
            folder = save_pretrained(model_or_folder, Path(tmp) / "checkpoint", **save_kwargs)
            return upload_checkpoint_folder(folder, repo_id, **upload)
    if save_kwargs:
        raise TypeError(f"{sorted(save_kwargs)} only apply when pushing a model, not the folder {model_or_folder}")
    return upload_checkpoint_folder(model_or_folder, repo_id, **upload)


def pretrained_metrics(tag: str) -> dict[str, float]:
    """The measured metrics of a pretrained tag (``{"top1": ..., ...}``), as recorded in the weights manifest."""
    manifest = load_manifest()
    if tag not in manifest:
        raise ValueError(f"unknown pretrained tag {tag!r}; tags with weights: {sorted(manifest) or 'none'}")
    return dict(manifest[tag].get("metrics", {}))
