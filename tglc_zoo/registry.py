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
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from timm.models import PretrainedCfg, generate_default_cfgs, register_model, split_model_name_tag
from torch import nn

from .archs import ARCHS, VARIANTS, ArchSpec, Variant, add_arch, arch_default_cfg, pool_size_for, remove_arch
from .builder import Architecture, build_model, build_model_with_cfg, resolve_checkpoint
from .checkpoint import HF_PREFIX, split_repo_id
from .checkpoint.sources import local_kind, read_source_config
from .errors import CheckpointNotFoundError, ConfigError
from .layers import GROUPED_CONV_TYPES
from .util.choices import unknown_choice
from .weights import load_manifest, manifest_cfgs, tags_of

__all__ = ["create_model", "create_model_from_source", "is_model", "list_models", "model_entrypoint", "default_cfgs",
           "register_arch", "register_architecture", "unregister_arch"]
LOCAL_PREFIX = "local-dir:"


def tag_cfg(variant: Variant, tagged: dict[str, Any]) -> dict[str, Any]:
    """A tag's pretrained config: its manifest entry over the architecture's config (``pool_size`` for its input)."""
    cfg = {**arch_default_cfg(variant), **tagged}
    cfg["pool_size"] = pool_size_for(cfg["input_size"], variant.spec.reduction)
    return cfg


def _build_default_cfgs(variants: Iterable[Variant]) -> dict[str, Any]:
    """timm's ``default_cfgs``: the untagged name's architecture config (always the default), then every tag
    with weights in manifest order."""
    tagged = manifest_cfgs()
    cfgs: dict[str, dict[str, Any] | PretrainedCfg] = {}
    for variant in variants:
        cfgs[variant.name] = arch_default_cfg(variant)
        for full in tags_of(variant.name):
            cfgs[full] = tag_cfg(variant, tagged[full])
    out = generate_default_cfgs(cfgs)
    for default in out.values():
        # timm would promote the first tag with weights to the default; the untagged config stays first
        default.tags.remove("")
        default.tags.appendleft("")
    return out


# timm style: the pretrained configs are declared above the entrypoints
default_cfgs = _build_default_cfgs(VARIANTS.values())


def _make_entrypoint(variant: Variant) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: Any = False, **kwargs: Any) -> nn.Module:
        model_entrypoint(variant.name)  # an architecture removed by unregister_arch: the unknown-model error
        return build_model(variant.name, pretrained=pretrained, **kwargs)

    groups = "" if variant.conv_type == "sc" else f", {variant.conv_type.upper()} with N={variant.groups}"
    entrypoint.__name__ = entrypoint.__qualname__ = variant.name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = (f"{variant.arch}{groups or ' (SC, standard convolutions)'}.\n\n"
                          "Args:\n    pretrained: False, True (default tag), a tag, or a from_pretrained source.\n"
                          "    **kwargs: num_classes, in_chans, drop_rate, conv_type, groups, conv_kwargs.")
    return entrypoint


_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def _register(variants: Iterable[Variant]) -> None:
    for v in variants:
        fn = register_model(_make_entrypoint(v))
        setattr(sys.modules[__name__], v.name, fn)
        _ENTRYPOINTS[v.name] = fn


_register(VARIANTS.values())


def register_arch(arch: str, spec: ArchSpec) -> list[str]:
    """Add an architecture at run time, as if it were in :data:`tglc_zoo.archs.ARCHS`: its names
    (``<arch>``, ``<arch>_<conv_type>_n<N>``) work in :func:`create_model`, :func:`list_models` and timm.

    Returns the new names. A family defined outside the package is one block class and this call, e.g.
    ``register_arch("mynet", ArchSpec(StagedNet, dict(block=MyBlock, stages=..., stem=...), "cifar10", 4,
    cfg=CIFAR10_CFG))``.
    """
    variants = add_arch(arch, spec)
    default_cfgs.update(_build_default_cfgs(variants))
    _register(variants)
    return [v.name for v in variants]


def unregister_arch(arch: str) -> None:
    """Remove an architecture added by :func:`register_arch` from tglc_zoo's names. timm has no public way to
    remove a registration: ``timm.list_models`` still lists the names, and building one raises the unknown-model
    error."""
    for v in remove_arch(arch):
        del _ENTRYPOINTS[v.name], default_cfgs[v.name]
        delattr(sys.modules[__name__], v.name)
        if v.name in __all__:  # timm's register_model listed it there
            __all__.remove(v.name)


def register_architecture(arch: Architecture) -> Callable[..., nn.Module]:
    """Register an architecture that is not an :class:`~tglc_zoo.archs.ArchSpec` family — the ``tglc_grouped``
    of converted models — with tglc_zoo and timm, like any other: ``create_model``, ``from_pretrained`` and
    timm's ``create_model`` reach it through the one builder (:func:`tglc_zoo.builder.build_model_with_cfg`)."""
    def entrypoint(pretrained: Any = False, **kwargs: Any) -> nn.Module:
        return build_model_with_cfg(arch, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = arch.name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = type(arch).__doc__
    fn = register_model(entrypoint)
    setattr(sys.modules[__name__], arch.name, fn)
    _ENTRYPOINTS[arch.name] = fn
    return fn


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
            ``hf-hub:org/name`` / ``local-dir:/path`` of a saved tglc_zoo checkpoint (its ``config.json`` names
            the architecture; :func:`create_model_from_source`).
        pretrained: load weights: ``True`` (the name's tag, or its default tag) or any source
            :func:`tglc_zoo.from_pretrained` accepts.
        **kwargs: ``num_classes``, ``in_chans``, ``drop_rate``, ``conv_type``, ``groups``, ``conv_kwargs``,
            timm's ``pretrained_cfg_overlay`` and ``cache_dir``, and the limits on what a checkpoint's config
            may ask for (``max_params``, ``max_modules``, ``trust_base``; docs/loading.md). ``None`` values
            are ignored.
    """
    if not isinstance(model_name, str):
        raise TypeError(f"model name must be a string, got {model_name!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if model_name.startswith((HF_PREFIX, LOCAL_PREFIX)):
        return create_model_from_source(model_name, pretrained=bool(pretrained), **kwargs)
    name, tag = split_model_name_tag(model_name)
    model_entrypoint(name)  # raises with suggestions
    if tag:
        tags = tags_of(name)
        if f"{name}.{tag}" not in tags:
            raise unknown_choice("pretrained tag", tag, [t.rpartition(".")[2] for t in tags],
                                 valid=f"the tags of {name} with weights: {tags or 'none'}")
        kwargs["pretrained_cfg"] = tag
    return model_entrypoint(name)(pretrained=pretrained, **kwargs)


def _config_only(origin: str, config: dict[str, Any]) -> dict[str, Any]:
    """What timm's ``local-dir:``/``hf-hub:`` routes pass an entrypoint for a config read without weights."""
    where = ({"source": "hf-hub", "hf_hub_id": split_repo_id(origin)[0]} if origin.startswith(HF_PREFIX)
             else {"source": "local-dir", "file": str(Path(origin).expanduser().resolve())})
    return dict(pretrained_cfg={**config["pretrained_cfg"], "num_classes": config["num_classes"], **where},
                pretrained_model_args=dict(config["model_args"]), **config["model_args"])


def create_model_from_source(source: str | os.PathLike[str], *, pretrained: bool = True, revision: str | None = None,
                             local_files_only: bool | None = None, cache_dir: str | os.PathLike[str] | None = None,
                             **kwargs: Any) -> nn.Module:
    """The model a checkpoint source describes: the architecture its config names, built by that architecture's
    entrypoint (so through the one builder and its guard), with the source's weights when ``pretrained``.

    ``source`` is a pretrained tag, a folder, a weights file, a URL, a Hub id (``org/name``, ``hf-hub:org/name``,
    a tag's repo served by its in-repo mirror) or ``local-dir:<folder>``. With ``pretrained=False`` only the
    config is read (timm's ``local-dir:``/``hf-hub:`` semantics: the architecture alone).
    """
    text = os.fspath(source)
    if text in load_manifest() and local_kind(Path(text).expanduser()) is None:  # a local path wins over a tag
        return create_model(text, pretrained=pretrained, cache_dir=cache_dir, **kwargs)
    if text.startswith(LOCAL_PREFIX):
        text = text.removeprefix(LOCAL_PREFIX)
        if local_kind(Path(text).expanduser()) != "folder":
            raise CheckpointNotFoundError(f"local-dir:{text} names no folder; local-dir: takes a checkpoint folder "
                                          "(config.json beside model.safetensors)")
    if pretrained:
        resolved = resolve_checkpoint(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        config, origin = resolved.config, resolved.origin
    else:
        config, origin = read_source_config(text, revision=revision, cache_dir=cache_dir,
                                            local_files_only=local_files_only)
    if config is None:
        raise ConfigError(f"{origin} carries no config (no config.json, no config in the safetensors metadata); "
                          f"build the model yourself: tglc_zoo.create_model(<name>, pretrained={text!r})")
    arch = config["architecture"]
    if arch not in _ENTRYPOINTS:
        raise ConfigError(f"{origin}: its config names architecture {arch!r}, which tglc_zoo does not have; "
                          f"registered architectures look like {list_models()[:6]}... (see tglc_zoo.list_models()); "
                          "a timm architecture loads with timm.create_model")
    if pretrained:
        return _ENTRYPOINTS[arch](pretrained=resolved, cache_dir=cache_dir, **kwargs)
    return _ENTRYPOINTS[arch](pretrained=False, cache_dir=cache_dir, **{**_config_only(origin, config), **kwargs})
