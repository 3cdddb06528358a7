"""Pick each GC-2L layer's implementation by timing them on this machine, once; in the spirit of
``torch.backends.cudnn.benchmark``, but opt-in and cached.

``impl="auto"`` reads a committed table measured on one machine; which implementation is fastest depends on
the CPU or GPU, the torch version and the thread count. :func:`autotune` runs the model once on an example
input to see every ``impl="auto"`` layer's real input (shape, memory format, dtype, device, training or not),
times every implementation on a copy of each distinct layer in interleaved rounds, and pins the fastest into
the layer (``layer.impl``). Every implementation computes the same operator, so pinning changes speed, not
results beyond float rounding.

The choices are cached per machine in ``$TGLC_ZOO_CACHE`` (else ``$XDG_CACHE_HOME/tglc_zoo``, else
``~/.cache/tglc_zoo``), file ``gc2l_autotune.json``, under a key of the device's model, the torch version and
the thread count: a second run on the same machine times nothing and pins the same choices, so it computes
the same way. A cache written by another torch or thread count is not used (it is kept for its own key); a
damaged cache file is reported in the log and rewritten.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..util.atomic import atomic_write_json
from ..util.hardware import hardware_description
from .gc2l_impl import KERNEL_IMPLS
from .two_level_conv import Impl, TwoLevelGroupConv2d

__all__ = ["autotune", "cache_path", "machine_key", "LayerCall", "CACHE_FORMAT"]

CACHE_FORMAT = "tglc_zoo.gc2l_autotune/1"
_logger = logging.getLogger(__name__)


def cache_path() -> Path:
    root = os.environ.get("TGLC_ZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tglc_zoo")
    return Path(root) / "gc2l_autotune.json"


def machine_key(device: torch.device) -> str:
    """What a timing depends on besides the layer: the device's model, the torch version, the threads."""
    return f"{hardware_description(device)}; torch {torch.__version__}"


@dataclass(frozen=True)
class LayerCall:
    """One GC-2L layer as the model calls it: its geometry and its input."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool
    input_shape: tuple[int, ...]
    channels_last: bool
    dtype: str
    device: str
    training: bool

    def key(self) -> str:
        return json.dumps([self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                           self.dilation, self.groups, self.bias, self.input_shape, self.channels_last, self.dtype,
                           self.device, self.training])

    @classmethod
    def of(cls, layer: TwoLevelGroupConv2d, x: torch.Tensor) -> LayerCall:
        training = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer.parameters()))
        cl = bool(x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                   layer.dilation, layer.groups, layer.conv.bias is not None, tuple(x.shape), cl,
                   str(x.dtype).removeprefix("torch."), x.device.type if x.device.index is None else str(x.device),
                   bool(training))


def _time_impls(call: LayerCall, impls: Sequence[str], rounds: int, min_time: float) -> dict[str, float]:
    """Seconds per call of every implementation on a fresh layer of ``call``'s shape (min over rounds)."""
    device, dtype = torch.device(call.device), getattr(torch, call.dtype)
    fmt = torch.channels_last if call.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    layer = TwoLevelGroupConv2d(call.in_channels, call.out_channels, call.kernel_size, call.stride, call.padding,
                                call.groups, call.bias, dilation=call.dilation)
    layer = layer.to(device=device, dtype=dtype, memory_format=fmt)  # type: ignore[call-overload]
    x = torch.randn(call.input_shape, device=device, dtype=dtype).contiguous(memory_format=fmt)
    x.requires_grad_(call.training)
    grad = torch.ones_like(layer(x)) if call.training else None

    def step(impl: str) -> Callable[[], None]:
        def run() -> None:
            layer.impl = cast(Impl, impl)
            if call.training:
                x.grad = None
                for p in layer.parameters():
                    p.grad = None
                layer(x).backward(grad)
            else:
                with torch.no_grad():
                    layer(x)
        return run

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    best = {impl: float("inf") for impl in impls}
    for impl in impls:  # warm up every kernel (allocators, oneDNN/cuDNN primitive caches)
        step(impl)()
    sync()
    for _ in range(rounds):  # interleaved: a change in load hits every candidate alike
        for impl in impls:
            run, n, t0 = step(impl), 0, time.perf_counter()
            while True:
                run()
                sync()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= min_time:
                    break
            best[impl] = min(best[impl], elapsed / n)
    return best


def _read_cache(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ok = isinstance(data, dict) and data.get("format") == CACHE_FORMAT and isinstance(data.get("machines"), dict)
        if not ok:
            raise ValueError(f"not a {CACHE_FORMAT} file")
        return data["machines"]
    except (OSError, ValueError, UnicodeDecodeError) as e:
        _logger.warning("GC-2L autotune cache %s is damaged (%s); it is ignored and will be rewritten", path, e)
        return {}


def autotune(model: nn.Module, *example_inputs: torch.Tensor, impls: Sequence[str] = KERNEL_IMPLS,
             cache: bool = True, rounds: int = 3, min_time: float = 0.05) -> dict[str, str]:
    """Pin every ``impl="auto"`` GC-2L layer of ``model`` to the implementation that runs fastest here for the
    input ``model(*example_inputs)`` gives it, in the current grad mode (see the module docstring).

    Returns ``{layer name: impl}``. Layers already pinned are left alone. The probing forward leaves the
    model's buffers and the random generator as they were. ``cache=False`` times everything and writes nothing.
    ``rounds`` × every implementation × ``min_time`` seconds is spent per distinct layer.
    """
    unknown = [i for i in impls if i not in KERNEL_IMPLS]
    if unknown or not impls:
        raise ValueError(f"impls={list(impls)!r}; valid choices: {list(KERNEL_IMPLS)}")
    calls: dict[str, LayerCall] = {}
    handles = []
    for name, layer in model.named_modules():
        if isinstance(layer, TwoLevelGroupConv2d) and layer.impl == "auto":
            def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
                calls.setdefault(name, LayerCall.of(cast(TwoLevelGroupConv2d, mod), args[0]))
            handles.append(layer.register_forward_pre_hook(hook))
    # the probe must not change the model: its buffers (BatchNorm statistics) and the generator come back
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    rng = torch.get_rng_state()
    try:
        model(*example_inputs)
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)
        torch.set_rng_state(rng)
    if not calls:
        return {}
    path = cache_path()
    machines = _read_cache(path) if cache else {}
    device = torch.device(next(iter(calls.values())).device)
    entry: dict[str, Any] = machines.setdefault(machine_key(device), {})
    t0, timed = time.perf_counter(), 0
    chosen: dict[str, str] = {}
    for name, call in calls.items():
        key = call.key()
        known = entry.get(key)
        if not (isinstance(known, dict) and known.get("impl") in impls):
            with torch.random.fork_rng(devices=[]):  # timing draws random layers: the caller's generator is kept
                times = _time_impls(call, impls, rounds, min_time)
            known = {"impl": min(times, key=times.__getitem__), "ms": {k: round(v * 1e3, 4) for k, v in times.items()}}
            entry[key] = known
            timed += 1
        chosen[name] = str(known["impl"])
        cast(TwoLevelGroupConv2d, model.get_submodule(name)).impl = cast(Impl, chosen[name])
    if timed:
        _logger.info("GC-2L autotune: timed %d layer shapes in %.1f s; %d from the cache", timed,
                     time.perf_counter() - t0, len({c.key() for c in calls.values()}) - timed)
        if cache:
            atomic_write_json(path, {"format": CACHE_FORMAT, "machines": machines})
    return chosen
