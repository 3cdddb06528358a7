"""MobileNetV2 (Sandler et al.) with switchable 1×1 convolutions.

The layout is torchvision's ``mobilenet_v2`` (width 1.0, 3,504,872 parameters as SC). Every 1×1
convolution comes from the model's :class:`~tglc_zoo.models.ConvFactory` — the 33 inside the
inverted-residual blocks and the final 320→1280 (``conv_head.conv``) — while the depthwise 3×3
convolutions and the stem stay as they are. The paper's Table 4 rule (for GC-2L the final 1×1 conv
stays a plain GC) is declared by the ``mobilenetv2`` architecture (:data:`tglc_zoo.archs.ARCHS`) as a
``conv_overrides`` entry, not here.

The stage loop, timm's options (``drop_path_rate`` on the residual blocks, ``global_pool``, ``output_stride``
as dilation of the depthwise convolutions) and the feature levels (the last block of each resolution:
16@2, 24@4, 32@8, 96@16, 320@32, as timm's own MobileNetV2) come from :class:`~tglc_zoo.models.StagedNet`.
"""
from typing import Any

import torch
from torch import nn

from ._conv_factory import ConvFactory, ConvOverrides
from ._parts import ConvBNAct, StemSpec, make_drop_path
from ._staged import StagedNet, StageSpec

__all__ = ["HEAD_CHANNELS", "InvertedResidual", "MOBILENETV2_STAGES", "MobileNetV2"]

# t (expansion), c (output channels), n (repeats), s (first stride) — torchvision's table
MOBILENETV2_STAGES: tuple[StageSpec, ...] = tuple(
    StageSpec(n, c, s, dict(expand_ratio=t))
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)))
STEM = StemSpec(32, kernel_size=3, stride=2, norm_act=True, act_layer=nn.ReLU6)
HEAD_CHANNELS = 1280


class InvertedResidual(nn.Module):
    """Expand (replaced 1×1) → depthwise 3×3 → project (replaced 1×1, linear), residual when shapes match."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int, make_conv: ConvFactory,
                 name: str, drop_path: float = 0.0, dilation: int = 1, first_dilation: int = 1) -> None:
        super().__init__()
        mid = in_chs * expand_ratio
        self.use_res = stride == 1 and in_chs == out_chs
        self.conv_pw = (ConvBNAct(make_conv(f"{name}.conv_pw.conv", in_chs, mid, 1), mid)
                        if expand_ratio != 1 else nn.Identity())
        self.conv_dw = ConvBNAct(nn.Conv2d(mid, mid, 3, stride, first_dilation, first_dilation, groups=mid,
                                           bias=False), mid)
        self.conv_pwl = ConvBNAct(make_conv(f"{name}.conv_pwl.conv", mid, out_chs, 1), out_chs, act_layer=None)
        # stochastic depth of the residual branch (blocks without a residual have nothing to drop)
        self.drop_path = make_drop_path(drop_path if self.use_res else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        return x + self.drop_path(out) if self.use_res else out


class MobileNetV2(StagedNet):
    """MobileNetV2 with a switchable convolution type for its 1×1 convolutions.

    Args:
        conv_type: ``"sc"``, ``"gc"``, ``"gc2l"``, ``"shuffle"`` or ``"flgc"``.
        groups: N for every replaced 1×1 convolution.
        num_classes, in_chans, drop_rate: as for timm models (``drop_rate`` defaults to torchvision's 0.2).
        drop_path_rate: stochastic depth: residual block i of n drops its branch with ``rate * i / (n - 1)``.
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"`` or ``""`` (no pooling; needs ``num_classes=0``).
        output_stride: the largest reduction of the feature maps (``None``: 32).
        conv_kwargs: extra options for the conv layers.
        norm_layer: ``"batchnorm"`` or ``"frozen_bn"`` (:class:`~tglc_zoo.models.FrozenBatchNorm2d`).
        conv_overrides: per-layer conv types (:data:`~tglc_zoo.models.ConvOverrides`); the registered
            ``mobilenetv2`` names pass Table 4's ``{"conv_head.conv": {"gc2l": "gc"}}``.
    """

    _classifier_name = "classifier"
    _stages_name = "blocks"

    def __init__(self, conv_type: str = "sc", groups: int = 1, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2, drop_path_rate: float = 0.0, global_pool: str = "avg",
                 output_stride: int | None = None, conv_kwargs: dict[str, Any] | None = None,
                 conv_overrides: ConvOverrides | None = None,
                 norm_layer: str | type[nn.Module] = "batchnorm") -> None:
        self.blocks: nn.Module
        self.classifier: nn.Module
        super().__init__(InvertedResidual, MOBILENETV2_STAGES, STEM, head_chs=HEAD_CHANNELS, act_layer=nn.ReLU6,
                         feature_levels="resolutions", conv_type=conv_type, groups=groups,
                         conv_overrides=conv_overrides, num_classes=num_classes, in_chans=in_chans,
                         drop_rate=drop_rate, drop_path_rate=drop_path_rate, global_pool=global_pool,
                         output_stride=output_stride, conv_kwargs=conv_kwargs, norm_layer=norm_layer)

    # the stage container and the classifier keep timm's MobileNetV2 names (``blocks``, ``classifier``)
    def forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return self._checkpointed_stages(x)
        return self.blocks(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)
