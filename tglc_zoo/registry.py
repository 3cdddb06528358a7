"""Model names → builders, their pretrained configs, and registration with timm.

Every architecture comes in its SC form (the plain name) and in grouped variants
``{arch}_{gc|gc2l|shuffle|flgc}_n{N}``. Each name is one thin entrypoint over a single builder,
registered both here and in timm's registry, so ``timm.create_model`` and ``timm.list_models`` see
them after ``import tglc_zoo``.
"""
from __future__ import annotations

import difflib
import fnmatch
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from timm.models import generate_default_cfgs, register_model
from timm.models import create_model as _timm_create_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._registry import split_model_name_tag
from torch import nn

from .layers import GROUPED_CONV_TYPES
from .models import MobileNetV2, WideResNet
from .loading import load_checkpoint_into, merge_checkpoint_cfg, resolve_pretrained
from .models._adapt import adapt_channel_stats

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its model class, fixed arguments, input config and registered group counts."""

    model_cls: type[nn.Module]
    kwargs: dict[str, Any]
    dataset: str
    groups: tuple[int, ...] = (2, 4, 8, 16)
    cfg: dict[str, Any] = field(default_factory=dict)


def _cifar(depth: int, k: int) -> ArchSpec:
    return ArchSpec(WideResNet, dict(depth=depth, widen_factor=k, layout="cifar"), "cifar10", cfg=dict(
        num_classes=10, input_size=(3, 32, 32), mean=CIFAR_MEAN, std=CIFAR_STD, crop_pct=1.0,
        first_conv="stem.conv", classifier="fc"))


_IMAGENET_CFG = dict(num_classes=1000, input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     crop_pct=0.875, pool_size=(7, 7), first_conv="stem.conv")

ARCHS: dict[str, ArchSpec] = {
    "wrn16_2": _cifar(16, 2),
    "wrn16_4": _cifar(16, 4),
    "wrn28_10": _cifar(28, 10),
    "wrn28_40": _cifar(28, 40),
    "wrn28_60": _cifar(28, 60),
    "wrn28_80": _cifar(28, 80),
    "wrn34_2": ArchSpec(WideResNet, dict(depth=34, widen_factor=2, layout="imagenet"), "imagenet-1k",
                        cfg=dict(_IMAGENET_CFG, classifier="fc")),
    "mobilenetv2": ArchSpec(MobileNetV2, {}, "imagenet-1k", groups=(2, 4, 8),
                            cfg=dict(_IMAGENET_CFG, classifier="classifier")),
}


@dataclass(frozen=True)
class Variant:
    """A registered model name: an architecture, a conv type and a group count."""

    name: str
    arch: str
    conv_type: str
    groups: int


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


def pretrained_tags() -> dict[str, dict[str, Any]]:
    """``{"name.tag": pretrained cfg}`` for every tag whose weights ship or are published."""
    from .weights import manifest_cfgs  # the manifest lives with the package data

    return manifest_cfgs()


def _default_cfg(variant: Variant) -> dict[str, Any]:
    spec = ARCHS[variant.arch]
    return dict(url="", license="apache-2.0", interpolation="bilinear", **spec.cfg)


def _build_default_cfgs() -> dict[str, Any]:
    cfgs: dict[str, dict[str, Any]] = {}
    tagged = pretrained_tags()
    for name, variant in VARIANTS.items():
        for full, cfg in tagged.items():
            if split_model_name_tag(full)[0] == name:
                cfgs[full] = {**_default_cfg(variant), **cfg}
        cfgs[name] = _default_cfg(variant)
    return generate_default_cfgs(cfgs)


# timm style: the pretrained configs are declared above the entrypoints
default_cfgs = _build_default_cfgs()

_TIMM_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args")


def _create(variant: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """The one builder behind every entrypoint."""
    v = VARIANTS[variant]
    spec = ARCHS[v.arch]
    pretrained_cfg = kwargs.pop("pretrained_cfg", None)
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    cache_dir = kwargs.pop("cache_dir", None)
    kwargs.pop("pretrained_model_args", None)
    for bad in ("features_only", "drop_path_rate"):
        if kwargs.get(bad):
            raise ValueError(f"{bad}={kwargs[bad]!r} is not supported by {variant}")
        kwargs.pop(bad, None)
    if isinstance(pretrained, str) and f"{variant}.{pretrained}" in pretrained_tags():
        pretrained, pretrained_cfg = True, pretrained  # a tag of this model
    if not pretrained and pretrained_cfg is None:
        # an untrained model describes its architecture's data, not the default tag's (e.g. CIFAR, not .fmnist)
        pretrained_cfg = _default_cfg(v)
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay).to_dict()
    checkpoint = None
    if pretrained:
        checkpoint = resolve_pretrained(variant, pretrained, cfg, cache_dir=cache_dir)
        cfg = merge_checkpoint_cfg(cfg, checkpoint)
        kwargs = {**(checkpoint.config or {}).get("model_args", {}), **kwargs}  # saved arguments are defaults
    model_kwargs = dict(conv_type=v.conv_type, groups=v.groups, num_classes=cfg.get("num_classes", 10))
    model_kwargs.update(kwargs)
    if pretrained:
        # unless asked otherwise, a pretrained model keeps the checkpoint's head and input channels;
        # a different num_classes / in_chans is adapted while loading
        model_kwargs.setdefault("in_chans", cfg.get("input_size", (3,))[0])
    model = spec.model_cls(**spec.kwargs, **model_kwargs)
    in_chans = model_kwargs.get("in_chans", 3)
    cfg.update(architecture=variant, num_classes=model.num_classes,
               input_size=(in_chans, *cfg["input_size"][1:]),
               **{k: adapt_channel_stats(cfg[k], in_chans) for k in ("mean", "std") if cfg.get(k)})
    model.pretrained_cfg = cfg
    model.model_args = {k: val for k, val in model_kwargs.items() if k != "num_classes"}
    model.model_args.setdefault("in_chans", in_chans)
    if checkpoint is not None:
        load_checkpoint_into(model, checkpoint)
    return model


def _make_entrypoint(variant: Variant) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: Any = False, **kwargs: Any) -> nn.Module:
        return _create(variant.name, pretrained=pretrained, **kwargs)

    groups = "" if variant.conv_type == "sc" else f", {variant.conv_type.upper()} with N={variant.groups}"
    entrypoint.__name__ = entrypoint.__qualname__ = variant.name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = (f"{variant.arch}{groups or ' (SC, standard convolutions)'}.\n\n"
                          "Args:\n    pretrained: False, True (default tag), a tag, or a from_pretrained source.\n"
                          "    **kwargs: num_classes, in_chans, drop_rate, conv_type, groups, conv_kwargs.")
    return entrypoint


_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
for _v in VARIANTS.values():
    _fn = register_model(_make_entrypoint(_v))
    setattr(sys.modules[__name__], _v.name, _fn)
    _ENTRYPOINTS[_v.name] = _fn


def _unknown_model(name: str) -> ValueError:
    hints = difflib.get_close_matches(name, list(VARIANTS), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    return ValueError(f"unknown model {name!r}.{hint} Valid architectures: {list(ARCHS)}; variants are "
                      f"'<arch>_<{'|'.join(GROUPED_CONV_TYPES)}>_n<N>' (see tglc_zoo.list_models()).")


def is_model(name: str) -> bool:
    """True when ``name`` (optionally ``name.tag``) is a tglc_zoo model."""
    return split_model_name_tag(name)[0] in VARIANTS


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    arch = split_model_name_tag(name)[0]
    if arch not in _ENTRYPOINTS:
        raise _unknown_model(name)
    return _ENTRYPOINTS[arch]


def list_models(filter: str | list[str] = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching the wildcard ``filter``; with ``pretrained=True`` only ``name.tag``s with weights."""
    names = sorted(pretrained_tags()) if pretrained else sorted(VARIANTS)
    patterns = [filter] if isinstance(filter, str) else list(filter)
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]


def create_model(model_name: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    """Build a tglc_zoo model by name (timm semantics).

    Args:
        model_name: a registered name, optionally with a pretrained tag (``wrn16_4_gc2l_n4.fmnist``), or
            ``hf-hub:org/name`` / ``local-dir:/path`` of a saved tglc_zoo checkpoint (resolved by timm).
        pretrained: load weights: ``True`` (the name's tag, or its default tag) or any source
            :func:`tglc_zoo.from_pretrained` accepts.
        **kwargs: ``num_classes``, ``in_chans``, ``drop_rate``, ``conv_type``, ``groups``, ``conv_kwargs``,
            and timm's ``pretrained_cfg_overlay`` and ``cache_dir``. ``None`` values are ignored.
    """
    if not isinstance(model_name, str):
        raise ValueError(f"model name must be a string, got {model_name!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if model_name.startswith(("hf-hub:", "local-dir:")):
        return _timm_create_model(model_name, pretrained=bool(pretrained), **kwargs)
    name, tag = split_model_name_tag(model_name)
    model_entrypoint(name)  # raises with suggestions
    if tag:
        tags = [t for t in pretrained_tags() if split_model_name_tag(t)[0] == name]
        if f"{name}.{tag}" not in tags:
            raise ValueError(f"unknown pretrained tag {tag!r} for {name}; tags with weights: {tags or 'none'}")
        kwargs["pretrained_cfg"] = tag
    return _create(name, pretrained=pretrained, **kwargs)
