"""Wide residual networks (Zagoruyko & Komodakis) with a switchable convolution type.

Two layouts, both with pre-activation basic blocks (BN-ReLU-conv3×3(stride)-BN-ReLU-conv3×3) and a
1×1 shortcut convolution without BN, applied to the activated input, where the shape changes:

* ``cifar``: WRN-d-k — a standard 3×3 stem 3→16, three stages of (d−4)/6 blocks with widths
  16k, 32k, 64k and strides 1, 2, 2.
* ``imagenet``: WRN-34-2 — a standard 7×7 stride-2 stem 3→64 with BN-ReLU and a 3×3 max-pool, then
  ResNet-34's [3, 4, 6, 3] blocks with widths 64k·(1, 2, 4, 8) and strides 1, 2, 2, 2.

Every convolution except the stem — the 3×3 convs and the 1×1 shortcuts — comes from the model's
:class:`~tglc_zoo.models.ConvFactory`. This reproduces the parameter counts of the paper's Tables 1–3.
The stage loop, timm's options (``drop_path_rate``, ``global_pool``, ``output_stride``) and the feature
levels (the stem and every stage) come from :class:`~tglc_zoo.models.StagedNet`.
"""
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ModelArgumentError
from ._checks import check_positive
from ._conv_factory import ConvFactory, ConvOverrides
from ._parts import StemSpec, make_drop_path
from ._staged import StagedNet, StageSpec

__all__ = ["PreActBlock", "WideResNet", "wrn_layout"]

Layout = Literal["cifar", "imagenet"]


class PreActBlock(nn.Module):
    """Pre-activation basic block; ``shortcut`` is a (replaced) 1×1 conv where the shape changes."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, make_conv: ConvFactory, name: str,
                 drop_path: float = 0.0, dilation: int = 1, first_dilation: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = make_conv(f"{name}.conv1", in_chs, out_chs, 3, stride, dilation=first_dilation)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.conv2 = make_conv(f"{name}.conv2", out_chs, out_chs, 3, 1, dilation=dilation)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = (make_conv(f"{name}.shortcut", in_chs, out_chs, 1, stride)
                         if stride != 1 or in_chs != out_chs else None)
        self.drop_path = make_drop_path(drop_path)  # stochastic depth of the residual branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.act(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(act)
        out = self.conv1(act)
        out = self.conv2(self.act(self.bn2(out)))
        return self.drop_path(out) + shortcut


def wrn_layout(depth: int, widen_factor: int, layout: Layout) -> tuple[StemSpec, list[StageSpec]]:
    """The stem and stages of WRN-``depth``-``widen_factor`` in ``layout``; bad values name the valid ones."""
    check_positive("widen_factor", widen_factor)
    if layout == "cifar":
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ModelArgumentError(f"CIFAR WideResNet depth must be 6n+4 with n >= 1 (e.g. 16, 28, 40), "
                                     f"got {depth!r}")
        n = (depth - 4) // 6
        return StemSpec(16), [StageSpec(n, 16 * widen_factor * 2 ** i, 2 if i else 1) for i in range(3)]
    if layout == "imagenet":
        if depth != 34:
            raise ModelArgumentError(f"the ImageNet WideResNet layout is ResNet-34's; depth must be 34, got {depth!r}")
        stem = StemSpec(64, kernel_size=7, stride=2, norm_act=True, pool=True)
        return stem, [StageSpec(n, 64 * widen_factor * 2 ** i, 2 if i else 1) for i, n in enumerate((3, 4, 6, 3))]
    raise ModelArgumentError(f"unknown WideResNet layout {layout!r}; valid choices: ['cifar', 'imagenet']")


class WideResNet(StagedNet):
    """WideResNet with a switchable convolution type.

    Args:
        depth: total depth; (depth − 4) must be divisible by 6 for ``cifar`` (blocks per stage).
        widen_factor: k, the width multiplier.
        layout: ``"cifar"`` (WRN-d-k, 32×32 inputs) or ``"imagenet"`` (ResNet-34 layout; ``depth`` must be 34).
        conv_type: ``"sc"``, ``"gc"``, ``"gc2l"``, ``"shuffle"`` or ``"flgc"``.
        groups: N, the number of groups of every replaced convolution.
        num_classes: size of the linear head (0: no head, ``forward`` returns pooled features).
        in_chans: input channels of the stem.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth: block i of n drops its residual branch with ``rate * i / (n - 1)``.
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"`` or ``""`` (no pooling; needs ``num_classes=0``).
        output_stride: the largest reduction of the feature maps (later strides become dilation);
            ``None``: the layout's own (4 for ``cifar``, 32 for ``imagenet``).
        conv_kwargs: extra options for the conv layers (e.g. ``impl`` of GC-2L).
        norm_layer: ``"batchnorm"`` or ``"frozen_bn"`` (:class:`~tglc_zoo.models.FrozenBatchNorm2d`).
        conv_overrides: per-layer conv types (:data:`~tglc_zoo.models.ConvOverrides`).
    """

    def __init__(self, depth: int = 28, widen_factor: int = 10, layout: Layout = "cifar", conv_type: str = "sc",
                 groups: int = 1, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, global_pool: str = "avg", output_stride: int | None = None,
                 conv_kwargs: dict[str, Any] | None = None, conv_overrides: ConvOverrides | None = None,
                 norm_layer: str | type[nn.Module] = "batchnorm") -> None:
        stem, stages = wrn_layout(depth, widen_factor, layout)
        super().__init__(PreActBlock, stages, stem, final_norm_act=True, conv_type=conv_type, groups=groups,
                         conv_overrides=conv_overrides, num_classes=num_classes, in_chans=in_chans,
                         drop_rate=drop_rate, drop_path_rate=drop_path_rate, global_pool=global_pool,
                         output_stride=output_stride, conv_kwargs=conv_kwargs, norm_layer=norm_layer)
        self.layout, self.depth, self.widen_factor = layout, depth, widen_factor
