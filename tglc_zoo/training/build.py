"""The model of a run: ``create_model`` with the dataset's classes and channels."""
from __future__ import annotations

from typing import Any, cast

from torch import nn

from ..data import DatasetInfo
from ..errors import ModelDatasetMismatchError, TglcZooError
from ..models._base import ZooModel
from ..registry import create_model

__all__ = ["build_model_for"]


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
