"""The guard every config-driven build passes before anything real is allocated.

* :func:`meta_build` builds the model a config describes on the meta device, counting every
  parameter, buffer and module as it is registered and every torch call made on the way; the first
  registration beyond a :class:`~tglc_zoo.builder.limits.Limits` stops the build at once, so a config that
  asks for 10**12 parameters or a million blocks is refused in milliseconds, having allocated nothing.
* :func:`building` refuses a config that, directly or through a base it names, builds itself again.

The builder then checks the meta model against the checkpoint's tensor shapes
(:func:`tglc_zoo.builder.load.check_fits`) before it builds the real one.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as torch_module
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError, TglcZooError
from .limits import MAX_REAL_ELEMENTS, MAX_TORCH_CALLS, MODULES_ENV, PARAMS_ENV, Limits

__all__ = ["MAX_NESTING", "building", "meta_build"]

MAX_NESTING = 4
"""How many config-driven builds may run inside each other (a converted model's base built from a config)."""

_BUILDING: ContextVar[tuple[str, ...]] = ContextVar("tglc_zoo_building", default=())


class _OverBudget(Exception):
    """Raised inside a meta build by the counters; turned into a :class:`ConfigError` by :func:`meta_build`."""

    def __init__(self, what: str, argument: str | None = None, env: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.raise_with = f"; if you trust this checkpoint, raise the limit with {argument} or ${env}" if env else ""


class _Budget(TorchFunctionMode):
    """Counts what a build on the meta device registers and does, on this thread only."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        self.thread = threading.get_ident()
        self.elements = 0
        self.modules = 0
        self.calls = 0
        self.real = 0

    def tensor(self, _module: nn.Module, _name: str, value: torch.Tensor | None) -> None:
        if value is None or threading.get_ident() != self.thread:
            return
        self.elements += value.numel()
        if self.elements > self.limits.max_params:
            raise _OverBudget(f"more than {self.limits.max_params:,} parameters and buffers", "max_params=", PARAMS_ENV)

    def module(self, _module: nn.Module, _name: str, _child: nn.Module | None) -> None:
        if threading.get_ident() != self.thread:
            return
        self.modules += 1
        if self.modules > self.limits.max_modules:
            raise _OverBudget(f"more than {self.limits.max_modules:,} modules", "max_modules=", MODULES_ENV)

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.calls += 1
        if self.calls > MAX_TORCH_CALLS:
            raise _OverBudget(f"more than {MAX_TORCH_CALLS:,} torch calls to build it (a loop over an absurd size)")
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.device.type != "meta":
            self.real += out.numel()
            if self.real > MAX_REAL_ELEMENTS:
                raise _OverBudget(f"real (not meta) tensors of more than {MAX_REAL_ELEMENTS:,} elements while it is "
                                  "built on the meta device (a size computed from an absurd argument)")
        return out


@contextmanager
def _counting(limits: Limits) -> Iterator[_Budget]:
    budget = _Budget(limits)
    with ExitStack() as stack:
        for register, hook in ((torch_module.register_module_parameter_registration_hook, budget.tensor),
                               (torch_module.register_module_buffer_registration_hook, budget.tensor),
                               (torch_module.register_module_module_registration_hook, budget.module)):
            stack.callback(register(hook).remove)
        stack.enter_context(torch.device("meta"))
        stack.enter_context(budget)
        yield budget


def meta_build(build: Callable[[], nn.Module], limits: Limits, origin: str) -> nn.Module:
    """``build()`` on the meta device within ``limits``; a :class:`ConfigError` naming ``origin`` beyond them.

    An error of tglc_zoo's own (an argument the architecture cannot take) passes through unchanged; any
    other failure of the meta build is a :class:`ConfigError`, since the config's size cannot be checked.
    """
    try:
        with _counting(limits):
            return build()
    except _OverBudget as e:
        raise ConfigError(f"{origin}: its config asks for a model with {e.what}; it was refused before anything was "
                          f"allocated{e.raise_with}") from None
    except TglcZooError:
        raise
    except Exception as e:  # a base model's own error for the arguments the config gives it
        raise ConfigError(f"{origin}: the model its config describes cannot be built on the meta device to check "
                          f"its size first ({type(e).__name__}: {str(e)[:300]})") from None


@contextmanager
def building(key: str | None, origin: str) -> Iterator[None]:
    """Mark the config ``key`` (a folder, file or Hub repo) as being built while the block runs.

    A config whose build reaches the same ``key`` again (a base spec naming ``local-dir:`` of its own
    folder), or more than :data:`MAX_NESTING` configs deep, is a :class:`ConfigError`.
    """
    stack = _BUILDING.get()
    if key is not None and key in stack:
        chain = " -> ".join((*stack[stack.index(key):], key))
        raise ConfigError(f"{origin}: its config refers to itself ({chain}); a base spec cannot name the "
                          "checkpoint it belongs to")
    if len(stack) >= MAX_NESTING:
        raise ConfigError(f"{origin}: configs nested more than {MAX_NESTING} deep ({' -> '.join(stack)}); a base "
                          "spec may name a model, not a chain of checkpoints")
    token = _BUILDING.set((*stack, key or origin))
    try:
        yield
    finally:
        _BUILDING.reset(token)
