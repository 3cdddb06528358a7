"""The body of a detection/segmentation backbone: the model (by name or given), its BatchNorm frozen or not, its
early levels frozen, and the levels asked for as a feature extractor."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from timm.models import create_feature_extractor
from torch import nn

from ..errors import ModelArgumentError
from ..models import ClassifierModel, freeze_batchnorm
from ..models._frozen_bn import check_norm_layer
from ..models.features import normalize_out_indices, wrap_features
from ..registry import create_model
from .levels import feature_levels

__all__ = ["Body", "build_body", "freeze_levels", "resolve_model"]


class Body(nn.Module):
    """The feature extractor of the levels taken, returning them as a list in forward order; ``levels`` are their
    ``feature_info`` entries (channels, reduction, module)."""

    def __init__(self, extractor: nn.Module, levels: list[dict[str, Any]]) -> None:
        super().__init__()
        self.extractor = extractor
        self.levels = levels

    def forward(self, x: Any) -> list[Any]:
        out = self.extractor(x)
        return list(out.values()) if isinstance(out, dict) else list(out)


def resolve_model(model: str | nn.Module, pretrained: Any, norm_layer: Any, kwargs: dict[str, Any]) -> nn.Module:
    """The model a backbone is built on: ``create_model(model, pretrained=..., norm_layer=..., **kwargs)`` for a
    name; a given model (any CNN: a tglc_zoo, timm or torchvision model, or one from ``create_grouped``) is used
    as it is, its BatchNorm frozen in place when ``norm_layer`` says so. ``norm_layer=None``: frozen when
    pretrained weights load (torchvision's detection rule)."""
    if isinstance(model, str):
        norm = check_norm_layer(norm_layer) if norm_layer is not None else ("frozen_bn" if pretrained else "batchnorm")
        return create_model(model, pretrained=pretrained, norm_layer=norm, **kwargs)
    if not isinstance(model, nn.Module):
        raise ModelArgumentError(f"a backbone is built on a model name or an nn.Module, got {type(model).__name__}")
    if pretrained or kwargs:
        given = sorted([*kwargs, *(["pretrained"] if pretrained else [])])
        raise ModelArgumentError(f"{given} build a model by name; for a given {type(model).__name__}, pass them to "
                                 "what built it (create_model, create_grouped, timm or torchvision)")
    if norm_layer is not None and check_norm_layer(norm_layer) == "frozen_bn":
        model = freeze_batchnorm(model)
    return model


def freeze_levels(model: nn.Module, levels: list[dict[str, Any]], trainable_levels: int | None) -> None:
    """Stop the gradient of every parameter up to the end of the level before the last ``trainable_levels``
    (``None`` or ``len(levels)``: all train; 0: every level is frozen), in definition order, which CNNs keep
    in forward order (torchvision's ``trainable_layers`` rule)."""
    if trainable_levels is None:
        return
    n = len(levels)
    if isinstance(trainable_levels, bool) or not isinstance(trainable_levels, int) or not 0 <= trainable_levels <= n:
        raise ModelArgumentError(f"trainable_levels must be an integer from 0 (a frozen body) to {n} (every level of "
                                 f"{type(model).__name__} trains), got {trainable_levels!r}")
    if trainable_levels == n:
        return
    names = [name for name, _ in model.named_modules()]
    boundary = levels[n - trainable_levels - 1]["module"]
    last = max(i for i, name in enumerate(names) if name == boundary or name.startswith(boundary + "."))
    frozen = set(names[1:last + 1])
    for name, module in model.named_modules():
        if name in frozen:
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)


def build_body(model: nn.Module, out_indices: int | Sequence[int] | None, trainable_levels: int | None,
               levels: list[dict[str, Any]] | None = None) -> Body:
    """The levels ``out_indices`` of ``model`` (``None``: all) as a :class:`Body`, after freezing its early levels.

    A tglc_zoo model runs through timm's ``FeatureListNet`` (as ``features_only=True``); any other CNN through
    timm's FX feature extractor, truncated after the last level taken. ``levels``: ``feature_levels(model)``,
    when the caller has them."""
    levels = levels if levels is not None else feature_levels(model)
    freeze_levels(model, levels, trainable_levels)
    indices = normalize_out_indices(len(levels), out_indices)
    taken = [levels[i] for i in indices]
    if isinstance(model, ClassifierModel):
        extractor = wrap_features(model, "list", indices)
    else:
        extractor = create_feature_extractor(model, {level["module"]: str(i) for i, level in enumerate(taken)})
    return Body(extractor, taken)
