"""The architectures of the zoo and the model names they give: ``<arch>`` (SC) and
``<arch>_<conv_type>_n<N>`` for every grouped conv type and registered N.

Adding an architecture means adding one :class:`ArchSpec` to :data:`ARCHS` (its model class lives in
``tglc_zoo/models/``): names, timm registration and the builder follow from it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .layers import GROUPED_CONV_TYPES
from .models import ClassifierModel, MobileNetV2, WideResNet

__all__ = ["ArchSpec", "ARCHS", "Variant", "VARIANTS", "arch_default_cfg", "pool_size_for", "CIFAR_MEAN",
           "CIFAR_STD", "IMAGENET_MEAN", "IMAGENET_STD"]

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its model class, fixed arguments, input config and registered group counts.

    ``cfg`` holds timm pretrained-config fields describing the model an untagged name builds (the
    paper's dataset for that architecture); ``reduction`` is how much the model shrinks its input
    (the ``pool_size`` of a config is the input size divided by it, rounded up).
    """

    model_cls: type[ClassifierModel]
    kwargs: dict[str, Any]
    dataset: str
    reduction: int
    groups: tuple[int, ...] = (2, 4, 8, 16)
    cfg: dict[str, Any] = field(default_factory=dict)


def _cifar(depth: int, k: int) -> ArchSpec:
    return ArchSpec(WideResNet, dict(depth=depth, widen_factor=k, layout="cifar"), "cifar10", 4, cfg=dict(
        num_classes=10, input_size=(3, 32, 32), mean=CIFAR_MEAN, std=CIFAR_STD, crop_pct=1.0,
        first_conv="stem.conv", classifier="fc"))


_IMAGENET_CFG = dict(num_classes=1000, input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     crop_pct=0.875, first_conv="stem.conv")

ARCHS: dict[str, ArchSpec] = {
    "wrn16_2": _cifar(16, 2),
    "wrn16_4": _cifar(16, 4),
    "wrn28_10": _cifar(28, 10),
    "wrn28_40": _cifar(28, 40),
    "wrn28_60": _cifar(28, 60),
    "wrn28_80": _cifar(28, 80),
    "wrn34_2": ArchSpec(WideResNet, dict(depth=34, widen_factor=2, layout="imagenet"), "imagenet-1k", 32,
                        cfg=dict(_IMAGENET_CFG, classifier="fc")),
    "mobilenetv2": ArchSpec(MobileNetV2, {}, "imagenet-1k", 32, groups=(2, 4, 8),
                            cfg=dict(_IMAGENET_CFG, classifier="classifier")),
}


@dataclass(frozen=True)
class Variant:
    """A registered model name: an architecture, a conv type and a group count."""

    name: str
    arch: str
    conv_type: str
    groups: int

    @property
    def spec(self) -> ArchSpec:
        return ARCHS[self.arch]


def _variants() -> dict[str, Variant]:
    out: dict[str, Variant] = {}
    for arch, spec in ARCHS.items():
        out[arch] = Variant(arch, arch, "sc", 1)
        for conv_type in GROUPED_CONV_TYPES:
            for n in spec.groups:
                name = f"{arch}_{conv_type}_n{n}"
                out[name] = Variant(name, arch, conv_type, n)
    return out


VARIANTS: dict[str, Variant] = _variants()


def pool_size_for(input_size: Sequence[int], reduction: int) -> tuple[int, int]:
    """The (H, W) of the unpooled features for an input of ``input_size`` ((C, H, W)) and a total reduction."""
    return (math.ceil(input_size[-2] / reduction), math.ceil(input_size[-1] / reduction))


def arch_default_cfg(variant: Variant) -> dict[str, Any]:
    """The pretrained config of an untagged ``variant`` (timm's default): its architecture's input config.

    This is what ``create_model(<name>)`` builds, whatever tags with weights exist.
    """
    cfg = dict(url="", license="apache-2.0", interpolation="bilinear", **variant.spec.cfg)
    cfg["pool_size"] = pool_size_for(cfg["input_size"], variant.spec.reduction)
    return cfg
