"""What the base spec of a converted checkpoint may name: an architecture, and nothing that loads anything.

A ``tglc_grouped`` config rebuilds its dense base (``base``, ``base_args``) before its own weights are
loaded. Without ``trust_base`` (:mod:`tglc_zoo.builder.limits`) the base must be a registered model name
— a timm name (tglc_zoo's names are timm names) or ``torchvision:<name>`` — and its arguments may only
describe the architecture: no argument through which timm or torchvision load weights or read files
(``pretrained``, ``checkpoint_path``, ``pretrained_cfg_overlay``, ``weights``, ...), and no string that
names a file, URL or Hub repo. A remote or local base (``hf-hub:``, ``local-dir:``) needs
``trust_base=True`` too.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigError
from .base import TORCHVISION_PREFIX

__all__ = ["check_base", "load_keys"]

_PATH_MARKS = ("/", "\\", ":")
_TRUST = "pass trust_base=True (or set $TGLC_ZOO_TRUST_BASE=1) if you trust this checkpoint"


@functools.cache
def load_keys() -> frozenset[str]:
    """The keyword arguments that make timm or torchvision load weights, read files or configure loading:
    the parameters of ``timm.create_model`` and ``timm.models.build_model_with_cfg`` besides the model's own,
    the arguments timm's routes add, and torchvision's weights arguments."""
    import timm
    from timm.models import build_model_with_cfg

    names: set[str] = set()
    for fn in (timm.create_model, build_model_with_cfg):
        names |= {p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind is not p.VAR_KEYWORD and p.name not in ("model_name", "model_cls", "variant")}
    return frozenset(names | {"pretrained_model_args", "weights", "weights_backbone", "progress", "features_only"})


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _check_name(base: str, origin: str) -> None:
    import timm

    if base.startswith(TORCHVISION_PREFIX):
        import torchvision

        name = base[len(TORCHVISION_PREFIX):]
        if name not in torchvision.models.list_models():
            raise ConfigError(f"{origin}: base {base!r} is not a torchvision model; valid: 'torchvision:<name>' for a "
                              "name of torchvision.models.list_models()")
        return
    if any(mark in base for mark in _PATH_MARKS):
        raise ConfigError(f"{origin}: base {base!r} is a remote or local model (hf-hub:, local-dir:, a path), not an "
                          f"architecture name; building it would read or download its config and weights. {_TRUST}")
    if not timm.is_model(timm.models.split_model_name_tag(base)[0]):
        raise ConfigError(f"{origin}: base {base!r} is not a registered model; valid: a timm model name "
                          "(timm.list_models(), tglc_zoo's names included) or 'torchvision:<name>'")


def check_base(base: str, base_args: Mapping[str, Any], origin: str, *, trust: bool = False) -> None:
    """Refuse a base spec that names more than an architecture (see the module docstring), unless ``trust``."""
    if trust:
        return
    _check_name(base, origin)
    loading = sorted(k for k in base_args if k in load_keys())
    if loading:
        raise ConfigError(f"{origin}: base_args {loading} make the base model load weights or read files; a base "
                          f"spec may only describe an architecture (refused: {sorted(load_keys())}). {_TRUST}")
    paths = [f"{where}={value[:80]!r}" for where, value in _strings(dict(base_args), "base_args")
             if any(mark in value for mark in _PATH_MARKS)]
    if paths:
        raise ConfigError(f"{origin}: {paths[:5]} name a file, URL or repo; a base spec may only describe an "
                          f"architecture. {_TRUST}")
