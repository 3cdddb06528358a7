"""Build a model on the meta device, then materialise only this rank's shard — with the very values the
single-process model gets for the same seed.

Why replay, not shard-aware initialisation: the CPU generator's output for a slice of a tensor is not the
slice of its output for the whole tensor (``normal_`` and ``uniform_`` draw in vectorised blocks whose
layout depends on the tensor's size), so no rank can draw "its rows" alone and match one process. What a
rank *can* do is repeat the single-process draws one tensor at a time:

1. :func:`deferred_build` runs the model's constructor under ``torch.device("meta")`` — no memory, no random
   numbers — while a ``TorchFunctionMode`` records, in order, every initialising call it makes: in-place
   initialisers (``nn.init.*``, ``Tensor.uniform_`` / ``normal_`` / ``fill_`` / ``zero_`` ...) and tensor
   factories (``torch.zeros``, ``torch.randn`` ...).
2. :meth:`InitRecord.replay` runs the same calls again on the CPU, in the same order, so the generator
   advances exactly as in the single-process build. Each state tensor is generated at full size from its
   last overwriting initialiser on, handed to a callback (which keeps this rank's slice), and freed; calls
   whose result is overwritten later only advance the generator (they run on a scratch tensor, one at a
   time). Peak memory is the shard plus the largest single tensor.

A construction this cannot replay exactly (an in-place write into a view of a parameter, a value computed
from another meta tensor, a state tensor no recorded call defines) raises :class:`NotReplayableError`;
callers then build the model normally. The replay is checked bit for bit against the ordinary build for
every zoo architecture in the tests.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from ..errors import TglcZooError

__all__ = ["NotReplayableError", "InitRecord", "deferred_build", "materialize_empty"]

_OVERWRITE_INIT = frozenset({
    nn.init.uniform_, nn.init.normal_, nn.init.trunc_normal_, nn.init.constant_, nn.init.ones_, nn.init.zeros_,
    nn.init.eye_, nn.init.dirac_, nn.init.xavier_uniform_, nn.init.xavier_normal_, nn.init.kaiming_uniform_,
    nn.init.kaiming_normal_, nn.init.orthogonal_, nn.init.sparse_,
})
_OVERWRITE_METHODS = frozenset({"uniform_", "normal_", "fill_", "zero_", "random_", "exponential_", "geometric_",
                                "log_normal_", "cauchy_", "bernoulli_"})
_DETERMINISTIC = frozenset({"constant_", "ones_", "zeros_", "eye_", "dirac_", "fill_", "zero_", "zeros", "ones",
                            "full", "empty", "arange", "tensor", "eye", "linspace", "zeros_like", "ones_like",
                            "full_like", "empty_like", "as_tensor", "new_zeros", "new_ones", "new_full",
                            "new_empty", "new_tensor"})
_FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.arange, torch.tensor, torch.eye,
                        torch.linspace, torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal,
                        torch.as_tensor, torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like,
                        torch.rand_like, torch.randn_like, torch.randint_like})
_NEW_METHODS = frozenset({"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"})


class NotReplayableError(TglcZooError):
    """The model's construction cannot be replayed one tensor at a time (build it normally instead)."""


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", func))


def _is_inplace(func: Any) -> bool:
    return func in _OVERWRITE_INIT or (isinstance(getattr(func, "__name__", None), str) and
                                       _name(func).endswith("_") and not _name(func).startswith("_"))


def _overwrites(func: Any, args: tuple[Any, ...]) -> bool:
    if func in _OVERWRITE_INIT:
        return True
    name = _name(func)
    if name == "bernoulli_":  # bernoulli_(p) with a float p overwrites; with a tensor p it reads it
        return len(args) < 2 or not isinstance(args[1], torch.Tensor)
    return name in _OVERWRITE_METHODS


@dataclass
class _Op:
    func: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    target: int | None          # id of the tensor an in-place call writes
    result: int | None          # id of the tensor a factory returns
    overwrites: bool
    deterministic: bool
    view: bool = False          # the call writes into a view of ``target``


class _Recorder(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[_Op] = []
        self.refs: list[torch.Tensor] = []   # keeps every recorded tensor alive: ids stay unique
        self.alias: dict[int, int] = {}      # ``t.data`` / ``t.detach()`` -> t
        self.depth = 0

    def canonical(self, t: torch.Tensor) -> int:
        i = id(t)
        while i in self.alias:
            i = self.alias[i]
        return i

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if self.depth:
            return func(*args, **kwargs)
        self.depth += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.depth -= 1
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if not args and isinstance(kwargs.get("tensor"), torch.Tensor):  # nn.init passes it by keyword
            kwargs = dict(kwargs)
            args = (kwargs.pop("tensor"),)
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        is_data = getattr(func, "__self__", None) is torch.Tensor.data
        if first is not None and isinstance(out, torch.Tensor) and (is_data or _name(func) == "detach"):
            self.refs.append(out)
            self.alias[id(out)] = self.canonical(first)
            return
        name = _name(func)
        if first is not None and first.is_meta and _is_inplace(func) and name not in ("requires_grad_",
                                                                                        "share_memory_"):
            self.refs.extend([first] + ([out] if isinstance(out, torch.Tensor) else []))
            base = first._base if first._base is not None else first
            if isinstance(out, torch.Tensor) and out is not first:
                self.alias[id(out)] = self.canonical(base)
            self.ops.append(_Op(func, args, kwargs, self.canonical(base), None, _overwrites(func, args),
                                name in _DETERMINISTIC, view=base is not first))
        elif isinstance(out, torch.Tensor) and out.is_meta and (func in _FACTORIES or name in _NEW_METHODS):
            self.refs.append(out)
            self.ops.append(_Op(func, args, kwargs, None, id(out), True, name in _DETERMINISTIC))


@dataclass
class InitRecord:
    """The recorded initialising calls of one meta-device build, and which state tensor each one writes."""

    ops: list[_Op]
    keys: dict[int, list[str]]                       # tensor id -> its state-dict keys (tied: several)
    shapes: dict[int, tuple[torch.Size, torch.dtype]]
    _recorder: _Recorder = field(repr=False)

    def _live_range(self) -> dict[int, tuple[int, int]]:
        """For every state tensor: (index of the op that last defines it from scratch, index of its last op)."""
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for i, op in enumerate(self.ops):
            tid = op.target if op.target is not None else op.result
            if tid is None or tid not in self.keys:
                continue
            if op.overwrites:
                first[tid] = i
            last[tid] = i
        missing = sorted(k for tid, ks in self.keys.items() if tid not in first for k in ks)
        if missing:
            raise NotReplayableError(f"no recorded initialiser defines {missing[:5]} (set from a value computed "
                                     "on the meta device, or never initialised)")
        return {tid: (first[tid], last[tid]) for tid in first}

    def replay(self, put: Callable[[str, torch.Tensor], None]) -> None:
        """Run the recorded calls on the CPU in order; ``put(key, full_tensor)`` once per state key."""
        ranges = self._live_range()
        live: dict[int, torch.Tensor] = {}

        def real(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_meta:
                tid = self._recorder.canonical(value)
                if tid not in live:
                    raise NotReplayableError(f"an initialiser reads a meta tensor of shape {tuple(value.shape)} "
                                             "whose value is not being replayed")
                return live[tid]
            if isinstance(value, torch.device) and value.type == "meta":
                return torch.device("cpu")
            return value

        for i, op in enumerate(self.ops):
            tid = op.target if op.target is not None else op.result
            assert tid is not None
            span = ranges.get(tid)
            kept = span is not None and span[0] <= i <= span[1]
            if not kept and op.deterministic:
                continue  # no random numbers, and its value is overwritten or unused
            kwargs = {k: real(v) for k, v in op.kwargs.items()}
            if op.target is not None:
                if op.view:
                    if tid in self.keys:
                        raise NotReplayableError(f"{_name(op.func)} writes into a view of state tensor "
                                                 f"{self.keys[tid][0]!r}")
                    continue
                if tid in live:
                    tensor = live[tid]
                elif op.overwrites:
                    shape, dtype = self.shapes.get(tid) or (op.args[0].shape, op.args[0].dtype)
                    tensor = torch.empty(shape, dtype=dtype)
                else:
                    raise NotReplayableError(f"{_name(op.func)} reads a tensor of shape {tuple(op.args[0].shape)} "
                                             "that was written before it could be replayed")
                args = (tensor, *tree_map(real, op.args[1:]))
                op.func(*args, **kwargs)
            else:
                if "device" in op.kwargs or op.func in _FACTORIES:
                    kwargs["device"] = torch.device("cpu")
                args = tree_map(real, op.args)
                if _name(op.func) in _NEW_METHODS:
                    kwargs.setdefault("device", torch.device("cpu"))
                tensor = op.func(*args, **kwargs)
            if kept:
                live[tid] = tensor
                if span is not None and i == span[1]:
                    for key in self.keys[tid]:
                        put(key, live[tid])
                    del live[tid]


def _state_ids(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from ((k, b) for k, b in model.named_buffers(remove_duplicate=False) if b is not None)


def deferred_build(build: Callable[[], nn.Module]) -> tuple[nn.Module, InitRecord]:
    """``build()`` on the meta device, with its initialising calls recorded for :meth:`InitRecord.replay`."""
    recorder = _Recorder()
    with torch.device("meta"), recorder:
        model = build()
    keys: dict[int, list[str]] = {}
    shapes: dict[int, tuple[torch.Size, torch.dtype]] = {}
    persistent = set(model.state_dict())
    for key, t in _state_ids(model):
        if key not in persistent:
            continue
        tid = recorder.canonical(t)
        keys.setdefault(tid, []).append(key)
        shapes[tid] = (t.shape, t.dtype)
    return model, InitRecord(recorder.ops, keys, shapes, recorder)


def materialize_empty(root: nn.Module, device: torch.device | str = "cpu") -> None:
    """Give every meta parameter and buffer of ``root`` uninitialised storage on ``device``, in place.

    Unlike ``Module.to_empty`` it keeps tied parameters tied (one new tensor per shared object).
    """
    memo: dict[int, Any] = {}
    for mod in root.modules():
        for name, p in mod._parameters.items():
            if p is not None and p.is_meta:
                if id(p) not in memo:
                    memo[id(p)] = nn.Parameter(torch.empty_like(p, device=device), requires_grad=p.requires_grad)
                mod._parameters[name] = memo[id(p)]
        for name, b in mod._buffers.items():
            if b is not None and b.is_meta:
                if id(b) not in memo:
                    memo[id(b)] = torch.empty_like(b, device=device)
                mod._buffers[name] = memo[id(b)]
