"""The layer grid: every conv type (and every GC-2L implementation) at one shape, N, layout and mode."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tglc_zoo.layers import create_conv, deploy
from tglc_zoo.layers.flops import layer_flops
from tglc_zoo.layers.gc2l_impl import ShapeKey, choose_impl, load_table

from .candidates import CANDIDATES, benchmark_groups
from .machine import ForeignLoad, load_average
from .shapes import ConvShape
from .timing import time_interleaved

MODES = ("fwd", "fwdbwd")
LAYOUTS = ("channels_last", "contiguous")


@dataclass(frozen=True)
class Setting:
    device: torch.device
    dtype: str  # "fp32" or "bf16" (autocast)
    batch: int
    rounds: int
    min_run_time: float
    clock: str = "wall"
    tune: bool = False  # also time a GC-2L layer pinned by tglc_zoo.layers.autotune (cold cache) as "gc2l:tuned"


def build(candidate: str, shape: ConvShape, groups: int) -> nn.Module:
    conv_type, kwargs, deployed = CANDIDATES[candidate]
    layer = create_conv(conv_type, shape.in_channels, shape.out_channels, shape.kernel_size, shape.stride,
                        groups=benchmark_groups(conv_type, groups), **kwargs)
    return deploy(layer) if deployed else layer


def _autocast(setting: Setting) -> contextlib.AbstractContextManager[None]:
    if setting.dtype == "bf16":
        return torch.autocast(setting.device.type, dtype=torch.bfloat16)
    if setting.dtype != "fp32":
        raise ValueError(f"unknown dtype {setting.dtype!r}; valid: ['fp32', 'bf16']")
    return contextlib.nullcontext()


def make_step(layer: nn.Module, x: torch.Tensor, mode: str, setting: Setting) -> Callable[[], object]:
    """A zero-argument callable running one forward (no grad) or one forward+backward."""
    params = list(layer.parameters())
    if mode == "fwd":
        def fwd() -> object:
            with torch.no_grad(), _autocast(setting):
                return layer(x)
        return fwd
    if mode != "fwdbwd":
        raise ValueError(f"unknown mode {mode!r}; valid: {list(MODES)}")
    xg = x.detach().requires_grad_(True)
    with _autocast(setting):
        grad = torch.ones_like(layer(xg))

    def fwdbwd() -> object:
        for p in params:
            p.grad = None
        xg.grad = None
        with _autocast(setting):
            y = layer(xg)
        y.backward(grad)
        return y
    return fwdbwd


def tuned_layer(shape: ConvShape, groups: int, x: torch.Tensor, mode: str, setting: Setting
                ) -> tuple[nn.Module, dict[str, Any]]:
    """A GC-2L layer pinned by :func:`tglc_zoo.layers.autotune` for ``x`` in ``mode``, tuned with a cold cache;
    and what the tuning chose and took."""
    import os
    import tempfile
    import time

    from tglc_zoo.layers import autotune

    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    layer = create_conv("gc2l", shape.in_channels, shape.out_channels, shape.kernel_size, shape.stride,
                        groups=groups).to(setting.device).to(memory_format=fmt)
    old = os.environ.get("TGLC_ZOO_CACHE")
    with tempfile.TemporaryDirectory() as cold:
        os.environ["TGLC_ZOO_CACHE"] = cold
        try:
            t0 = time.perf_counter()
            with torch.enable_grad() if mode == "fwdbwd" else torch.no_grad(), _autocast(setting):
                chosen = autotune(layer, x.detach().requires_grad_(mode == "fwdbwd"))
            seconds = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("TGLC_ZOO_CACHE", None)
            else:
                os.environ["TGLC_ZOO_CACHE"] = old
    return layer, {"tuned_impl": next(iter(chosen.values()), None), "tune_s": round(seconds, 3)}


def candidates_for(mode: str) -> list[str]:
    """Everything, except the deployed (inference-only) FLGC in forward+backward."""
    return [c for c in CANDIDATES if not (mode == "fwdbwd" and CANDIDATES[c][2])]


def bench_point(shape: ConvShape, groups: int, layout: str, mode: str, setting: Setting,
                candidates: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows for every candidate at one (shape, N, layout, mode), timed interleaved."""
    names = [c for c in (candidates or CANDIDATES) if c in candidates_for(mode)]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(setting.batch, shape.in_channels, shape.h, shape.w, device=setting.device)
    x = x.contiguous(memory_format=fmt)
    layers = {name: build(name, shape, groups).to(setting.device).to(memory_format=fmt) for name in names}
    tuning: dict[str, Any] = {}
    if setting.tune and shape.valid_groups(groups):
        layers["gc2l:tuned"], tuning = tuned_layer(shape, groups, x, mode, setting)
    steps = {name: make_step(layer, x, mode, setting) for name, layer in layers.items()}
    load = load_average()
    with ForeignLoad() as foreign:
        timings = time_interleaved(steps, setting.rounds, setting.min_run_time, clock=setting.clock)
    for name, layer in layers.items():
        t = timings[name]
        yield {
            "grid": shape.grid, "shape": shape.label(), "in_channels": shape.in_channels,
            "out_channels": shape.out_channels, "kernel_size": shape.kernel_size, "stride": shape.stride,
            "h": shape.h, "w": shape.w, "hw_out": shape.out_hw, "groups": groups, "layout": layout, "mode": mode,
            "dtype": setting.dtype, "device": setting.device.type, "batch": setting.batch, "conv": name,
            "clock": setting.clock, "threads": torch.get_num_threads(),
            "time_ms": t.best * 1e3, "time_median_ms": t.median * 1e3, "blocks": t.runs,
            "flops": layer_flops(layer, x.shape), "load_average": load[0] if load else None,
            "foreign_load": foreign.cores, **(tuning if name == "gc2l:tuned" else {}),
        }
    del layers, steps


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Per (shape, N, layout, mode, dtype): time and FLOP ratios to GC and to SC, in place."""
    ref: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in rows:
        ref.setdefault(_point(r), {})[r["conv"]] = r
    for r in rows:
        group = ref[_point(r)]
        for base in ("gc", "sc"):
            b = group.get(base)
            r[f"t/{base}"] = r["time_ms"] / b["time_ms"] if b else None
            r[f"flops/{base}"] = r["flops"] / b["flops"] if b else None


def add_auto_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ``gc2l:auto`` row per point: the measured row of the implementation the committed table picks
    for it (the default ``impl="auto"`` runs exactly that kernel; it is not timed a second time)."""
    by_point: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_point.setdefault(_point(r), {})[r["conv"]] = r
    out = []
    for group in by_point.values():
        any_row = next(iter(group.values()))
        key = ShapeKey(any_row["device"], any_row["layout"] == "channels_last", any_row["mode"] == "fwdbwd",
                       any_row["in_channels"], any_row["out_channels"], any_row["kernel_size"], any_row["stride"],
                       any_row["groups"], any_row["hw_out"])
        impl = choose_impl(key)
        if f"gc2l:{impl}" in group:
            out.append(dict(group[f"gc2l:{impl}"], conv="gc2l:auto", auto_impl=impl))
    return out


def rederive_auto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the ``gc2l:auto`` rows recomputed from the current implementation table, ratios refreshed."""
    choose_impl.cache_clear()
    load_table.cache_clear()
    out = [r for r in rows if r["conv"] != "gc2l:auto"]
    out += add_auto_rows(out)
    add_ratios(out)
    return out


def _point(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["grid"], r["shape"], r["groups"], r["layout"], r["mode"], r["dtype"], r["device"])
