"""MobileNetV2 (Sandler et al.) with switchable 1×1 convolutions.

The layout is torchvision's ``mobilenet_v2`` (width 1.0, 3,504,872 parameters as SC). Every 1×1
convolution is replaced — the 33 inside the inverted-residual blocks and the final 320→1280 — while
the depthwise 3×3 convolutions and the stem stay as they are. For GC-2L the coarse structure is
added to the 33 block convolutions only; the final 1×1 convolution stays a plain GC. This is the rule
that reproduces all seven counts of the paper's Table 4.

timm's options: ``drop_path_rate`` (stochastic depth on the residual blocks, rising over the blocks as in
timm's ResNets), ``global_pool`` and ``output_stride`` (later strides become dilation of the depthwise
convolutions). Feature levels: the last block of each resolution (16@2, 24@4, 32@8, 96@16, 320@32), as
timm's own MobileNetV2.
"""
from typing import Any

import torch
from torch import nn

from ._base import (
    ClassifierModel,
    ConvFactory,
    check_positive,
    drop_path_rates,
    init_weights_,
    make_drop_path,
    stage_geometry,
)

# t (expansion), c (output channels), n (repeats), s (first stride) — torchvision's table
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


class ConvBNAct(nn.Sequential):
    """conv → BN → ReLU6 (no activation when ``act=False``)."""

    def __init__(self, conv: nn.Module, out_chs: int, act: bool = True) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()


class InvertedResidual(nn.Module):
    """Expand (replaced 1×1) → depthwise 3×3 → project (replaced 1×1, linear), residual when shapes match."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int, make_conv: ConvFactory,
                 name: str, drop_path: float = 0.0, dilation: int = 1) -> None:
        super().__init__()
        mid = in_chs * expand_ratio
        self.use_res = stride == 1 and in_chs == out_chs
        self.conv_pw = (ConvBNAct(make_conv(f"{name}.conv_pw.conv", in_chs, mid, 1), mid)
                        if expand_ratio != 1 else nn.Identity())
        self.conv_dw = ConvBNAct(nn.Conv2d(mid, mid, 3, stride, dilation, dilation, groups=mid, bias=False), mid)
        self.conv_pwl = ConvBNAct(make_conv(f"{name}.conv_pwl.conv", mid, out_chs, 1), out_chs, act=False)
        # stochastic depth of the residual branch (blocks without a residual have nothing to drop)
        self.drop_path = make_drop_path(drop_path if self.use_res else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        return x + self.drop_path(out) if self.use_res else out


class MobileNetV2(ClassifierModel):
    """MobileNetV2 with a switchable convolution type for its 1×1 convolutions.

    Args:
        conv_type: ``"sc"``, ``"gc"``, ``"gc2l"``, ``"shuffle"`` or ``"flgc"``.
        groups: N for every replaced 1×1 convolution.
        num_classes, in_chans, drop_rate: as for timm models (``drop_rate`` defaults to torchvision's 0.2).
        drop_path_rate: stochastic depth: residual block i of n drops its branch with ``rate * i / (n - 1)``.
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"`` or ``""`` (no pooling; needs ``num_classes=0``).
        output_stride: the largest reduction of the feature maps (``None``: 32).
        conv_kwargs: extra options for the conv layers.
    """

    _classifier_name = "classifier"
    _stages_name = "blocks"

    def __init__(self, conv_type: str = "sc", groups: int = 1, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2, drop_path_rate: float = 0.0, global_pool: str = "avg",
                 output_stride: int | None = None, conv_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(num_classes, drop_rate, global_pool, drop_path_rate)
        check_positive("in_chans", in_chans)
        make_conv = ConvFactory(conv_type, groups, **(conv_kwargs or {}))
        self.conv_type, self.groups = conv_type, groups
        self.stem = ConvBNAct(nn.Conv2d(in_chans, STEM_CHANNELS, 3, 2, 1, bias=False), STEM_CHANNELS)
        geometry = stage_geometry([s for *_, s in INVERTED_RESIDUAL_SETTING], 2, output_stride)
        dprs = iter(drop_path_rates(self.drop_path_rate, sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING)))
        stages: list[nn.Module] = []
        in_chs = STEM_CHANNELS
        for i, ((t, c, n, _), (s, first_dilation, dilation, reduction)) in enumerate(
                zip(INVERTED_RESIDUAL_SETTING, geometry)):
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(in_chs, c, s if j == 0 else 1, t, make_conv, f"blocks.{i}.{j}",
                                               next(dprs), first_dilation if j == 0 else dilation))
                in_chs = c
            stages.append(nn.Sequential(*blocks))
            last_at_resolution = i + 1 == len(geometry) or INVERTED_RESIDUAL_SETTING[i + 1][3] > 1
            if last_at_resolution:
                self.feature_info.append(dict(num_chs=c, reduction=reduction, module=f"blocks.{i}"))
        self.blocks = nn.Sequential(*stages)
        self.output_stride = geometry[-1][3]
        # the final 1×1 conv is grouped too, but never gets the coarse level (the rule of Table 4; README "Models")
        head_type = "gc" if conv_type == "gc2l" else conv_type
        head_conv = make_conv("conv_head.conv", in_chs, HEAD_CHANNELS, 1, conv_type=head_type)
        self.conv_head: nn.Module = ConvBNAct(head_conv, HEAD_CHANNELS)
        self.num_features = self.head_hidden_size = HEAD_CHANNELS
        self.head_drop = nn.Dropout(self.drop_rate)
        self.classifier = self._make_head(num_classes)
        init_weights_(self)

    def forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return self._checkpointed_stages(x)
        return self.blocks(x)

    def final_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def _prune_final(self) -> None:
        self.conv_head = nn.Identity()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=r"^blocks\.(\d+)" if coarse else [
            (r"^blocks\.(\d+)\.(\d+)", None), (r"^conv_head", (99999,))])
