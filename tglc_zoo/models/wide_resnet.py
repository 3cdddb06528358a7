"""Wide residual networks (Zagoruyko & Komodakis) with a switchable convolution type.

Two layouts, both with pre-activation basic blocks (BN-ReLU-conv3×3(stride)-BN-ReLU-conv3×3) and a
1×1 shortcut convolution without BN, applied to the activated input, where the shape changes:

* ``cifar``: WRN-d-k — a standard 3×3 stem 3→16, three stages of (d−4)/6 blocks with widths
  16k, 32k, 64k and strides 1, 2, 2.
* ``imagenet``: WRN-34-2 — a standard 7×7 stride-2 stem 3→64 with BN-ReLU and a 3×3 max-pool, then
  ResNet-34's [3, 4, 6, 3] blocks with widths 64k·(1, 2, 4, 8) and strides 1, 2, 2, 2.

Every convolution except the stem — the 3×3 convs and the 1×1 shortcuts — comes from
:func:`tglc_zoo.layers.create_conv` with the model's ``conv_type`` and ``groups``. This reproduces
the parameter counts of the paper's Tables 1–3.

timm's options: ``drop_path_rate`` (stochastic depth on each block's residual branch, linearly rising
over the blocks as in timm's ResNets), ``global_pool`` and ``output_stride`` (later strides become
dilation). Feature levels: the stem and every stage.
"""
from typing import Any, Literal

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


class Stem(nn.Module):
    """The standard (never replaced) first convolution, plus BN-ReLU-max-pool for ImageNet."""

    def __init__(self, in_chans: int, out_chs: int, layout: Layout) -> None:
        super().__init__()
        self.layout = layout
        self.bn: nn.Module
        self.act: nn.Module
        self.pool: nn.Module
        if layout == "cifar":
            self.conv = nn.Conv2d(in_chans, out_chs, 3, 1, 1, bias=False)
            self.bn, self.act, self.pool = nn.Identity(), nn.Identity(), nn.Identity()
        else:
            self.conv = nn.Conv2d(in_chans, out_chs, 7, 2, 3, bias=False)
            self.bn, self.act = nn.BatchNorm2d(out_chs), nn.ReLU(inplace=True)
            self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))


class WideResNet(ClassifierModel):
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
    """

    def __init__(self, depth: int = 28, widen_factor: int = 10, layout: Layout = "cifar", conv_type: str = "sc",
                 groups: int = 1, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, global_pool: str = "avg", output_stride: int | None = None,
                 conv_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(num_classes, drop_rate, global_pool, drop_path_rate)
        check_positive("in_chans", in_chans)
        check_positive("widen_factor", widen_factor)
        make_conv = ConvFactory(conv_type, groups, **(conv_kwargs or {}))
        if layout == "cifar":
            if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
                raise ValueError(f"CIFAR WideResNet depth must be 6n+4 with n >= 1 (e.g. 16, 28, 40), got {depth!r}")
            stem_chs, counts, strides = 16, [(depth - 4) // 6] * 3, [1, 2, 2]
            widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        elif layout == "imagenet":
            if depth != 34:
                raise ValueError(f"the ImageNet WideResNet layout is ResNet-34's; depth must be 34, got {depth!r}")
            stem_chs, counts, strides = 64, [3, 4, 6, 3], [1, 2, 2, 2]
            widths = [64 * widen_factor * 2 ** i for i in range(4)]
        else:
            raise ValueError(f"unknown WideResNet layout {layout!r}; valid choices: ['cifar', 'imagenet']")
        self.layout, self.depth, self.widen_factor = layout, depth, widen_factor
        self.conv_type, self.groups = conv_type, groups

        self.stem = Stem(in_chans, stem_chs, layout)
        stem_reduction = 1 if layout == "cifar" else 4
        geometry = stage_geometry(strides, stem_reduction, output_stride)
        self.feature_info = [dict(num_chs=stem_chs, reduction=stem_reduction, module="stem")]
        dprs = iter(drop_path_rates(self.drop_path_rate, sum(counts)))
        stages: list[nn.Module] = []
        in_chs = stem_chs
        for i, (count, width, geometry_i) in enumerate(zip(counts, widths, geometry)):
            stride, first_dilation, dilation, reduction = geometry_i
            blocks = []
            for j in range(count):
                blocks.append(PreActBlock(in_chs, width, stride if j == 0 else 1, make_conv, f"stages.{i}.{j}",
                                          next(dprs), dilation, first_dilation if j == 0 else dilation))
                in_chs = width
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = in_chs
        self.output_stride = geometry[-1][3]
        self.norm: nn.Module = nn.BatchNorm2d(in_chs)
        self.act: nn.Module = nn.ReLU(inplace=True)
        self.head_drop = nn.Dropout(self.drop_rate)
        self.fc = self._make_head(num_classes)
        init_weights_(self)

    def forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return self._checkpointed_stages(x)
        return self.stages(x)

    def final_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x))

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def _prune_final(self) -> None:
        self.norm, self.act = nn.Identity(), nn.Identity()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+)\.(\d+)", None), (r"^norm", (99999,))])
