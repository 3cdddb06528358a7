"""A dilated GC-2L backbone for torchvision's segmentation heads (``DeepLabV3`` with ``DeepLabHead``,
``FCN`` with ``FCNHead``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..errors import ModelArgumentError
from .body import Body, build_body, resolve_model
from .levels import feature_levels

__all__ = ["SegmentationBackbone", "segmentation_backbone"]


class SegmentationBackbone(nn.Module):
    """``forward`` returns ``{"out": the last level}`` (and ``"aux"``: the level before it), as torchvision's
    ``IntermediateLayerGetter`` does for ``DeepLabV3`` / ``FCN``; ``out_channels`` and ``aux_channels`` size the
    heads."""

    def __init__(self, body: Body) -> None:
        super().__init__()
        self.body = body
        self.out_channels = body.levels[-1]["num_chs"]
        self.aux_channels = body.levels[0]["num_chs"] if len(body.levels) > 1 else None
        self.output_stride = body.levels[-1]["reduction"]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.body(x)
        out = OrderedDict(out=feats[-1])
        if len(feats) > 1:
            out["aux"] = feats[0]
        return out


def segmentation_backbone(model: str | nn.Module, output_stride: int = 8, aux: bool = False, norm_layer: Any = None,
                          trainable_levels: int | None = None, pretrained: Any = False,
                          **kwargs: Any) -> SegmentationBackbone:
    """A backbone whose last level has the reduction ``output_stride`` (later strides become dilation).

    Args:
        model: a tglc_zoo name or tag, built with ``create_model(model, output_stride=output_stride, ...)``; or a
            built CNN whose last level already has that reduction (timm: ``create_model(..., output_stride=8)``;
            torchvision: ``replace_stride_with_dilation=[False, True, True]``).
        output_stride: 8 or 16 as for DeepLab (any reduction the model's stages reach).
        aux: also return the level before the last (``"aux"``, for an ``FCNHead`` auxiliary classifier).
        norm_layer, trainable_levels, pretrained, **kwargs: as for :func:`~tglc_zoo.backbones.fpn_backbone`.
    """
    if isinstance(model, str):
        kwargs = {**kwargs, "output_stride": output_stride}
    model = resolve_model(model, pretrained, norm_layer, kwargs)
    levels = feature_levels(model)
    if levels[-1]["reduction"] != output_stride:
        raise ModelArgumentError(
            f"the last level of {type(model).__name__} has reduction {levels[-1]['reduction']}, not output_stride="
            f"{output_stride}; build it dilated (tglc_zoo/timm: create_model(..., output_stride={output_stride}); "
            "torchvision ResNets: replace_stride_with_dilation) or pass its name")
    if trainable_levels is None and pretrained:
        trainable_levels = min(3, len(levels))
    return SegmentationBackbone(build_body(model, [-2, -1] if aux and len(levels) > 1 else [-1], trainable_levels,
                                           levels))
