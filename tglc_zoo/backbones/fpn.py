"""A GC-2L backbone with a feature pyramid, for torchvision's detectors (``FasterRCNN``, ``MaskRCNN``,
``RetinaNet``, ``FCOS``), in the style of torchvision's ``resnet_fpn_backbone``."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from ..models.features import normalize_out_indices
from ..util.choices import check_choice
from .body import Body, build_body, resolve_model
from .levels import feature_levels

__all__ = ["EXTRA_BLOCKS", "FPNBackbone", "fpn_backbone"]

EXTRA_BLOCKS: dict[str, int] = {"pool": 1, "p6p7": 2, "none": 0}
"""``extra_blocks`` by name, with the maps each adds: ``"pool"`` (torchvision's ``LastLevelMaxPool``, Faster/Mask
R-CNN's), ``"p6p7"`` (``LastLevelP6P7`` on P5, RetinaNet's and FCOS's), ``"none"``."""
MAPS = 5
"""The number of maps torchvision's default anchor generators expect (sizes 32–512, or 8–128 for FCOS)."""


class FPNBackbone(nn.Module):
    """``body`` (the levels taken, keys ``"0"``, ``"1"``, ...) → torchvision's ``FeaturePyramidNetwork``.

    Attributes, as torchvision's ``BackboneWithFPN``: ``body``, ``fpn``, ``out_channels``; ``forward`` returns an
    ``OrderedDict`` of ``out_channels``-channel maps (``"0"`` … plus ``"pool"`` or ``"p6"``, ``"p7"``).
    """

    def __init__(self, body: Body, out_channels: int, extra_blocks: ExtraFPNBlock | None,
                 norm_layer: Any = None) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork([level["num_chs"] for level in body.levels], out_channels,
                                         extra_blocks=extra_blocks, norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = OrderedDict((str(i), f) for i, f in enumerate(self.body(x)))
        return self.fpn(feats)


def _extra_block(extra_blocks: str | ExtraFPNBlock | None, out_channels: int) -> tuple[ExtraFPNBlock | None, int]:
    if extra_blocks is None or isinstance(extra_blocks, ExtraFPNBlock):
        return extra_blocks, (0 if extra_blocks is None else 1)
    kind = check_choice("extra_blocks", str(extra_blocks), EXTRA_BLOCKS)
    block = {"pool": LastLevelMaxPool, "p6p7": lambda: LastLevelP6P7(out_channels, out_channels),
             "none": lambda: None}[kind]()
    return block, EXTRA_BLOCKS[kind]


def fpn_backbone(model: str | nn.Module, out_indices: int | Sequence[int] | None = None, out_channels: int = 256,
                 extra_blocks: str | ExtraFPNBlock | None = "pool", norm_layer: Any = None,
                 trainable_levels: int | None = None, pretrained: Any = False, fpn_norm_layer: Any = None,
                 **kwargs: Any) -> FPNBackbone:
    """A detection backbone that torchvision's ``FasterRCNN``, ``MaskRCNN``, ``RetinaNet`` and ``FCOS`` take as it is.

    Args:
        model: a tglc_zoo name or tag (``"wrn34_2_gc2l_n8"``), built with ``create_model(model, pretrained=...,
            norm_layer=..., **kwargs)``; or a built CNN — a tglc_zoo, timm or torchvision model, or one converted
            by :func:`tglc_zoo.convert.create_grouped` (levels from its ``feature_info``, or found by running it).
        out_indices: the feature levels to build the pyramid on (``None``: the last ones that, with the extra
            blocks, make the 5 maps torchvision's default anchor generators expect; an int: the last n).
        out_channels: the pyramid's channels.
        extra_blocks: ``"pool"`` (default; Faster/Mask R-CNN), ``"p6p7"`` (RetinaNet, FCOS), ``"none"`` or a
            torchvision ``ExtraFPNBlock``.
        norm_layer: ``"frozen_bn"`` / ``"batchnorm"`` (or torchvision's ``FrozenBatchNorm2d`` / ``nn.BatchNorm2d``)
            for the body; ``None``: frozen when pretrained weights load, as torchvision's detection models do.
        trainable_levels: how many levels, counted from the last, train (torchvision's ``trainable_layers``);
            the parameters before them are frozen. ``None``: 3 with pretrained weights, else all.
        pretrained: as for ``create_model`` (a tag, ``True``, or a checkpoint source).
        fpn_norm_layer: a norm layer for the pyramid's own convs (torchvision's FPN ``norm_layer``; none by default).
        **kwargs: for ``create_model`` (``in_chans``, ``conv_kwargs``, ``output_stride``, ...).
    """
    model = resolve_model(model, pretrained, norm_layer, kwargs)
    extra, extra_maps = _extra_block(extra_blocks, out_channels)
    levels = feature_levels(model)
    n = len(levels)
    if out_indices is None:
        out_indices = min(n, max(MAPS - extra_maps, 1))
    normalize_out_indices(n, out_indices)  # a bad index is refused before anything is frozen
    if trainable_levels is None and pretrained:
        trainable_levels = min(3, n)
    body = build_body(model, out_indices, trainable_levels, levels)
    return FPNBackbone(body, out_channels, extra, fpn_norm_layer)
