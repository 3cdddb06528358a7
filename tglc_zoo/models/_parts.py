"""Building blocks shared by the families: the stem, conv → BN → activation, and stochastic depth.

None of them is ever replaced by another conv type: the stem and the depthwise convs stay standard.
"""
from dataclasses import dataclass

import torch
from timm.layers import DropPath
from torch import nn

__all__ = ["ConvBNAct", "Stem", "StemSpec", "make_drop_path"]


def make_drop_path(p: float) -> nn.Module:
    """timm's ``DropPath(p)`` (per-sample residual-branch drop), or an identity when ``p`` is 0."""
    return DropPath(p) if p > 0 else nn.Identity()


class ConvBNAct(nn.Sequential):
    """conv → BN → activation (none when ``act_layer`` is ``None``)."""

    def __init__(self, conv: nn.Module, out_chs: int, act_layer: type[nn.Module] | None = nn.ReLU6) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = act_layer(inplace=True) if act_layer is not None else nn.Identity()


@dataclass(frozen=True)
class StemSpec:
    """The standard (never replaced) first convolution of a family, and what follows it.

    ``norm_act``: BN and ``act_layer`` after the conv; ``pool``: a 3×3 stride-2 max-pool after them.
    """

    out_chs: int
    kernel_size: int = 3
    stride: int = 1
    norm_act: bool = False
    pool: bool = False
    act_layer: type[nn.Module] = nn.ReLU

    @property
    def reduction(self) -> int:
        """How much the stem shrinks its input."""
        return self.stride * (2 if self.pool else 1)

    def build(self, in_chans: int) -> "Stem":
        return Stem(in_chans, self)


class Stem(nn.Module):
    """conv (``stem.conv``, the ``first_conv`` of the pretrained config), then optionally BN-act and max-pool."""

    def __init__(self, in_chans: int, spec: StemSpec) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, spec.out_chs, spec.kernel_size, spec.stride, spec.kernel_size // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(spec.out_chs) if spec.norm_act else nn.Identity()
        self.act: nn.Module = spec.act_layer(inplace=True) if spec.norm_act else nn.Identity()
        self.pool: nn.Module = nn.MaxPool2d(3, 2, 1) if spec.pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))
