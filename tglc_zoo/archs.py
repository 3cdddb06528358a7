"""The architectures of the zoo and the model names they give: ``<arch>`` (SC) and
``<arch>_<conv_type>_n<N>`` for every grouped conv type and registered N.

Adding an architecture means adding one :class:`ArchSpec` to :data:`ARCHS` (its model class lives in
``tglc_zoo/models/``; a new family needs only its block class, run by :class:`~tglc_zoo.models.StagedNet`):
names, timm registration and the builder follow from it. Outside the package,
:func:`tglc_zoo.registry.register_arch` adds one at run time (this module's :func:`add_arch` plus timm's
registration).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelArgumentError
from .layers import GROUPED_CONV_TYPES
from .models import ClassifierModel, MobileNetV2, WideResNet

__all__ = ["ArchSpec", "ARCHS", "Variant", "VARIANTS", "add_arch", "remove_arch", "arch_default_cfg",
           "pool_size_for", "CIFAR_MEAN", "CIFAR_STD", "IMAGENET_MEAN", "IMAGENET_STD", "CIFAR10_CFG", "IMAGENET_CFG",
           "MOBILENETV2_CONV_OVERRIDES"]

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_CFG: dict[str, Any] = dict(num_classes=10, input_size=(3, 32, 32), mean=CIFAR_MEAN, std=CIFAR_STD,
                                   crop_pct=1.0, first_conv="stem.conv", classifier="fc")
"""The input config of an architecture on CIFAR-10 (a :class:`~tglc_zoo.models.StagedNet`'s module names)."""
IMAGENET_CFG: dict[str, Any] = dict(num_classes=1000, input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    crop_pct=0.875, first_conv="stem.conv", classifier="fc")
"""The input config of an architecture on ImageNet-1k."""
MOBILENETV2_CONV_OVERRIDES: dict[str, dict[str, str]] = {"conv_head.conv": {"gc2l": "gc"}}
"""The paper's Table 4 rule: MobileNetV2's final 320→1280 conv is grouped but never gets the coarse level."""


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its model class, fixed arguments, input config and registered group counts.

    ``kwargs`` are the model class's arguments that make this architecture (a
    :class:`~tglc_zoo.models.StagedNet`'s ``block``, ``stages``, ``stem``, ...; ``conv_overrides`` for layers
    that keep another conv type); users cannot pass them to ``create_model``. ``cfg`` holds timm
    pretrained-config fields describing the model an untagged name builds (the paper's dataset for that
    architecture); ``reduction`` is how much the model shrinks its input
    (the ``pool_size`` of a config is the input size divided by it, rounded up).
    """

    model_cls: type[ClassifierModel]
    kwargs: dict[str, Any]
    dataset: str
    reduction: int
    groups: tuple[int, ...] = (2, 4, 8, 16)
    cfg: dict[str, Any] = field(default_factory=dict)


def _cifar(depth: int, k: int) -> ArchSpec:
    return ArchSpec(WideResNet, dict(depth=depth, widen_factor=k, layout="cifar"), "cifar10", 4, cfg=dict(CIFAR10_CFG))


ARCHS: dict[str, ArchSpec] = {
    "wrn16_2": _cifar(16, 2),
    "wrn16_4": _cifar(16, 4),
    "wrn28_10": _cifar(28, 10),
    "wrn28_40": _cifar(28, 40),
    "wrn28_60": _cifar(28, 60),
    "wrn28_80": _cifar(28, 80),
    "wrn34_2": ArchSpec(WideResNet, dict(depth=34, widen_factor=2, layout="imagenet"), "imagenet-1k", 32,
                        cfg=dict(IMAGENET_CFG)),
    "mobilenetv2": ArchSpec(MobileNetV2, dict(conv_overrides=MOBILENETV2_CONV_OVERRIDES), "imagenet-1k", 32,
                            groups=(2, 4, 8), cfg=dict(IMAGENET_CFG, classifier="classifier")),
}
_BUILT_IN = frozenset(ARCHS)


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


def variants_of(arch: str, spec: ArchSpec) -> dict[str, Variant]:
    """The names ``arch`` gives: its SC name, then ``<arch>_<conv_type>_n<N>`` for every grouped type and N."""
    out = {arch: Variant(arch, arch, "sc", 1)}
    for conv_type in GROUPED_CONV_TYPES:
        for n in spec.groups:
            name = f"{arch}_{conv_type}_n{n}"
            out[name] = Variant(name, arch, conv_type, n)
    return out


VARIANTS: dict[str, Variant] = {name: v for arch, spec in ARCHS.items() for name, v in variants_of(arch, spec).items()}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def add_arch(arch: str, spec: ArchSpec) -> list[Variant]:
    """Add the architecture ``arch`` to :data:`ARCHS` and its names to :data:`VARIANTS`; returns the new names.

    Only this module's tables: :func:`tglc_zoo.registry.register_arch` also registers the names with timm.
    A name that is taken, or not lower-case letters, digits and ``_``, is refused.
    """
    if not isinstance(arch, str) or not _NAME.fullmatch(arch):
        raise ModelArgumentError(f"architecture name {arch!r} is not valid; valid: lower-case letters, digits and '_', "
                                 "starting with a letter (timm's model names)")
    if not isinstance(spec, ArchSpec):
        raise ModelArgumentError(f"architecture {arch!r} needs an ArchSpec, got {type(spec).__name__}")
    new = variants_of(arch, spec)
    taken = sorted(n for n in new if n in VARIANTS)
    if arch in ARCHS or taken:
        raise ModelArgumentError(f"architecture {arch!r} would register names that exist already: {taken[:5]}; "
                                 f"registered architectures: {list(ARCHS)}")
    ARCHS[arch] = spec
    VARIANTS.update(new)
    return list(new.values())


def remove_arch(arch: str) -> list[Variant]:
    """Remove an architecture added by :func:`add_arch` (the built-in ones stay); returns its names."""
    added = sorted(set(ARCHS) - _BUILT_IN)
    if arch not in added:
        raise ModelArgumentError(f"architecture {arch!r} was not added at run time and cannot be removed; "
                                 f"valid choices: {added}")
    spec = ARCHS.pop(arch)
    return [VARIANTS.pop(name) for name in variants_of(arch, spec)]


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
