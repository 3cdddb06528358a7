"""The model of a run: ``create_model`` with the dataset's classes and channels."""
from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from timm.models import split_model_name_tag
from torch import nn

from ..archs import VARIANTS
from ..builder import BuildRequest, ZooArchitecture, resolve_config
from ..data import DatasetInfo
from ..errors import ModelDatasetMismatchError, TglcZooError
from ..models._base import ZooModel
from ..registry import create_model

__all__ = ["build_model_for", "pretrained_weights_for"]


def build_model_for(model_name: str, info: DatasetInfo, overrides: dict[str, Any], pretrained: bool = False
                    ) -> nn.Module:
    """``create_model`` with ``info``'s classes and channels; its pretrained cfg describes the dataset.
    Failures name the model and the dataset."""
    kwargs = dict(overrides)
    for key, want in (("num_classes", info.num_classes), ("in_chans", info.in_chans)):
        if key in kwargs and kwargs[key] != want:
            raise ModelDatasetMismatchError(f"{key}={kwargs[key]} was requested but dataset {info.name!r} has "
                                            f"{key}={want}")
        kwargs[key] = want
    try:
        model = create_model(model_name, pretrained=pretrained, **kwargs)
    except (TglcZooError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelDatasetMismatchError(f"cannot build model {model_name!r} for dataset {info.name!r} "
                                        f"({info.in_chans} channels, {info.num_classes} classes): {exc}") from exc
    zoo = cast(ZooModel, model)  # a zoo model; its pretrained_cfg is set here in any case
    zoo.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), "input_size": tuple(info.input_size),
                          "mean": tuple(info.mean), "std": tuple(info.std), "num_classes": info.num_classes}
    return model


def pretrained_weights_for(model_name: str, info: DatasetInfo, overrides: dict[str, Any]) -> Path | None:
    """The safetensors file ``create_model(model_name, pretrained=True, ...)`` would load for ``info``, when it
    loads as it is (no head or stem adapted); ``None`` otherwise. A sharded run reads its slices from it."""
    name, tag = split_model_name_tag(model_name)
    if name not in VARIANTS:
        return None
    kwargs = {**overrides, "num_classes": info.num_classes, "in_chans": info.in_chans}
    if tag:
        kwargs["pretrained_cfg"] = tag
    resolved = resolve_config(ZooArchitecture(VARIANTS[name]), BuildRequest.from_call(name, True, kwargs))
    ckpt = resolved.checkpoint
    if ckpt is None or resolved.adapt_head or resolved.adapt_stem or ckpt.weights.suffix != ".safetensors":
        return None
    return ckpt.weights
