"""What a config may ask the builder for: the limits, their defaults, and how to raise them.

A checkpoint's config — or the config timm's ``local-dir:``/``hf-hub:`` routes read — decides what gets
built. Before the real model is built, the builder builds it on the meta device under these limits
(:mod:`tglc_zoo.builder.guard`) and refuses a config that asks for more:

=================  ==========================  ==============================================================
limit              default                     raise it with
=================  ==========================  ==============================================================
parameters         3,000,000,000 (WRN-28-80,   ``max_params=`` (``from_pretrained``, ``create_model``, timm's
(and buffers)      the largest zoo model, has  ``create_model``, ``torch.hub.load``) or ``$TGLC_ZOO_MAX_PARAMS``
                   2.33 B)
modules            20,000                      ``max_modules=`` or ``$TGLC_ZOO_MAX_MODULES``
a base spec's      architecture only           ``trust_base=True`` or ``$TGLC_ZOO_TRUST_BASE=1``: a
weights/files/                                 ``tglc_grouped`` base may then name weights, files, URLs or
remote bases                                   ``hf-hub:``/``local-dir:`` bases
=================  ==========================  ==============================================================

Building on the meta device also stops after :data:`MAX_TORCH_CALLS` torch calls or
:data:`MAX_REAL_ELEMENTS` elements of real (not meta) tensors; the largest timm models make about
33,000 calls and a few hundred elements. The size of JSON read from a checkpoint is capped in
:mod:`tglc_zoo.checkpoint.json_limit`.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..errors import ModelArgumentError

__all__ = ["DEFAULT_MAX_MODULES", "DEFAULT_MAX_PARAMS", "LIMIT_KWARGS", "Limits", "MAX_REAL_ELEMENTS",
           "MAX_TORCH_CALLS", "MODULES_ENV", "PARAMS_ENV", "TRUST_ENV"]

DEFAULT_MAX_PARAMS = 3_000_000_000
DEFAULT_MAX_MODULES = 20_000
MAX_TORCH_CALLS = 200_000
MAX_REAL_ELEMENTS = 1 << 16
PARAMS_ENV = "TGLC_ZOO_MAX_PARAMS"
MODULES_ENV = "TGLC_ZOO_MAX_MODULES"
TRUST_ENV = "TGLC_ZOO_TRUST_BASE"
LIMIT_KWARGS = ("max_params", "max_modules", "trust_base")
"""The keyword arguments of ``create_model``/``from_pretrained`` that set the limits (never model arguments)."""


def _count(value: object, what: str, env: str) -> int:
    text = str(value).replace("_", "")
    try:
        number = int(float(text)) if "e" in text.lower() else int(text)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or number < 1:
        raise ModelArgumentError(f"{what}={value!r} (argument or ${env}) is not valid; valid: a positive integer "
                                 "such as 5_000_000_000 or 5e9")
    return number


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ModelArgumentError(f"trust_base={value!r} (argument or ${TRUST_ENV}) is not valid; valid: true or false "
                             "(1/0, yes/no)")


@dataclass(frozen=True)
class Limits:
    """The limits of one build (see the module docstring)."""

    max_params: int = DEFAULT_MAX_PARAMS
    max_modules: int = DEFAULT_MAX_MODULES
    trust_base: bool = False

    @classmethod
    def resolve(cls, max_params: object = None, max_modules: object = None, trust_base: object = None) -> Limits:
        """The limits an argument sets, else those of the build this one runs inside (a converted model's base
        built from a config inherits what the user allowed the outer checkpoint), else the environment's, else
        the defaults."""
        outer = _ACTIVE.get()
        if outer is None:
            env = os.environ
            outer = cls(_count(env.get(PARAMS_ENV, DEFAULT_MAX_PARAMS), "max_params", PARAMS_ENV),
                        _count(env.get(MODULES_ENV, DEFAULT_MAX_MODULES), "max_modules", MODULES_ENV),
                        _flag(env.get(TRUST_ENV, "")))
        return cls(outer.max_params if max_params is None else _count(max_params, "max_params", PARAMS_ENV),
                   outer.max_modules if max_modules is None else _count(max_modules, "max_modules", MODULES_ENV),
                   outer.trust_base if trust_base is None else _flag(trust_base))

    @contextmanager
    def active(self) -> Iterator[Limits]:
        """These limits are the defaults of every build started inside the block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


_ACTIVE: ContextVar[Limits | None] = ContextVar("tglc_zoo_limits", default=None)
