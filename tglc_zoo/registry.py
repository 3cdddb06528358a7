"""Model names → the builder, their pretrained configs, and registration with timm.

Every architecture of :mod:`tglc_zoo.archs` comes in its SC form (the plain name) and in grouped
variants ``{arch}_{conv_type}_n{N}``. Each name is one thin entrypoint over the single builder
(:func:`tglc_zoo.builder.build_model`), registered in timm's registry through its public API, so
``timm.create_model`` and ``timm.list_models`` see them after ``import tglc_zoo``.

The untagged name always means the architecture on its own dataset (:func:`~tglc_zoo.archs.arch_default_cfg`):
that config is timm's default for the name whatever tags with weights exist, so
``timm.get_pretrained_cfg(name)`` describes what ``create_model(name)`` builds. Tags with weights follow
it, in manifest order; ``pretrained=True`` on an untagged name loads the first of them (see
:mod:`tglc_zoo.builder`).
"""
from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable
from typing import Any

from timm.models import PretrainedCfg, generate_default_cfgs, register_model, split_model_name_tag
from timm.models import create_model as _timm_create_model
from torch import nn

from .archs import ARCHS, VARIANTS, Variant, arch_default_cfg, pool_size_for
from .builder import build_model
from .layers import GROUPED_CONV_TYPES
from .util.choices import unknown_choice
from .weights import manifest_cfgs, tags_of

__all__ = ["create_model", "is_model", "list_models", "model_entrypoint", "default_cfgs"]


def tag_cfg(variant: Variant, tagged: dict[str, Any]) -> dict[str, Any]:
    """A tag's pretrained config: its manifest entry over the architecture's config (``pool_size`` for its input)."""
    cfg = {**arch_default_cfg(variant), **tagged}
    cfg["pool_size"] = pool_size_for(cfg["input_size"], variant.spec.reduction)
    return cfg


def _build_default_cfgs() -> dict[str, Any]:
    """timm's ``default_cfgs``: the untagged name's architecture config (always the default), then every tag
    with weights in manifest order."""
    tagged = manifest_cfgs()
    cfgs: dict[str, dict[str, Any] | PretrainedCfg] = {}
    for name, variant in VARIANTS.items():
        cfgs[name] = arch_default_cfg(variant)
        for full in tags_of(name):
            cfgs[full] = tag_cfg(variant, tagged[full])
    out = generate_default_cfgs(cfgs)
    for default in out.values():
        # timm would promote the first tag with weights to the default; the untagged config stays first
        default.tags.remove("")
        default.tags.appendleft("")
    return out


# timm style: the pretrained configs are declared above the entrypoints
default_cfgs = _build_default_cfgs()


def _make_entrypoint(variant: Variant) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: Any = False, **kwargs: Any) -> nn.Module:
        return build_model(variant.name, pretrained=pretrained, **kwargs)

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


def is_model(name: str) -> bool:
    """True when ``name`` (optionally ``name.tag``) is a tglc_zoo model."""
    return split_model_name_tag(name)[0] in VARIANTS


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entrypoint function of ``name`` (its tag, if any, is ignored)."""
    arch = split_model_name_tag(name)[0]
    if arch not in _ENTRYPOINTS:
        raise unknown_choice("model", name, VARIANTS, hints=3,
                             valid=f"architectures {list(ARCHS)}, as '<arch>' or "
                                   f"'<arch>_<{'|'.join(GROUPED_CONV_TYPES)}>_n<N>' (see tglc_zoo.list_models())")
    return _ENTRYPOINTS[arch]


def list_models(filter: str | list[str] = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching the wildcard ``filter``; with ``pretrained=True`` only ``name.tag``s with weights."""
    names = sorted(manifest_cfgs()) if pretrained else sorted(VARIANTS)
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
        raise TypeError(f"model name must be a string, got {model_name!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if model_name.startswith(("hf-hub:", "local-dir:")):
        return _timm_create_model(model_name, pretrained=bool(pretrained), **kwargs)
    name, tag = split_model_name_tag(model_name)
    model_entrypoint(name)  # raises with suggestions
    if tag:
        tags = tags_of(name)
        if f"{name}.{tag}" not in tags:
            raise unknown_choice("pretrained tag", tag, [t.rpartition(".")[2] for t in tags],
                                 valid=f"the tags of {name} with weights: {tags or 'none'}")
        kwargs["pretrained_cfg"] = tag
    return build_model(name, pretrained=pretrained, **kwargs)
