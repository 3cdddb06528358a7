"""Building blocks shared by the families: the stem, conv → BN → activation, and stochastic depth.

None of them is ever replaced by another conv type: the stem and the depthwise convs stay standard.
"""
from dataclasses import dataclass

import torch
from timm.layers import DropPath
from torch import nn

from ..errors import ModelArgumentError

__all__ = ["ConvBNAct", "Stem", "StemSpec", "input_channels_message", "make_drop_path"]


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


def input_channels_message(expected: int, got: int) -> str:
    """What a model whose stem takes ``expected`` channels says to a batch of ``got`` channels: both fixes."""
    if expected == 1:
        load = "load them as grayscale (timm: create_dataset(..., input_img_mode='L'); torchvision: Grayscale())"
    elif expected == 3:
        load = "load them as RGB (timm: create_dataset(..., input_img_mode='RGB'))"
    else:
        load = f"give it {expected}-channel images"
    return (f"this model takes {expected}-channel images (its stem 'stem.conv' has in_channels={expected}), got a "
            f"batch with {got} channels; either {load}, or build the model for {got} channels: "
            f"create_model(..., in_chans={got}) (pretrained stem filters are adapted)")


class Stem(nn.Module):
    """conv (``stem.conv``, the ``first_conv`` of the pretrained config), then optionally BN-act and max-pool."""

    def __init__(self, in_chans: int, spec: StemSpec) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, spec.out_chs, spec.kernel_size, spec.stride, spec.kernel_size // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(spec.out_chs) if spec.norm_act else nn.Identity()
        self.act: nn.Module = spec.act_layer(inplace=True) if spec.norm_act else nn.Identity()
        self.pool: nn.Module = nn.MaxPool2d(3, 2, 1) if spec.pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] != self.conv.in_channels:  # not under FX
            raise ModelArgumentError(input_channels_message(self.conv.in_channels, x.shape[1]))
        return self.pool(self.act(self.bn(self.conv(x))))
