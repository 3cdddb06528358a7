"""Whole models: training throughput (img/s, one SGD step per call) and inference latency (batch 1)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from tglc_zoo.archs import ARCHS
from tglc_zoo.layers import CONV_TYPES, deploy
from tglc_zoo.layers.flops import model_flops
from tglc_zoo.registry import create_model

from .candidates import benchmark_groups, has_deployed_form
from .machine import load_average
from .timing import CLOCKS

MODEL_CONV_TYPES = CONV_TYPES


def build_model(arch: str, conv_type: str, groups: int) -> torch.nn.Module:
    if benchmark_groups(conv_type, groups) == 1:
        return create_model(arch)
    return create_model(arch, conv_type=conv_type, groups=groups)


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[None]:
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(fn: Any, device: torch.device, warmup: int, iters: int, clock: str) -> tuple[float, float]:
    """(min, median) seconds per call over ``iters`` calls after ``warmup`` calls."""
    now = CLOCKS["wall" if device.type == "cuda" else clock]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = now()
        fn()
        _sync(device)
        times.append(now() - t0)
    times.sort()
    return times[0], times[len(times) // 2]


def bench_model(arch: str, conv_type: str, groups: int, device: torch.device, dtype: str, train_batch: int,
                warmup: int, iters: int, channels_last: bool = True, clock: str = "wall",
                compiled: bool = False) -> Iterator[dict[str, Any]]:
    """Training throughput (and, eager only, inference latency) of one model; ``compiled``: under
    ``torch.compile`` (the first calls compile; they are the warm-up)."""
    spec = ARCHS[arch]
    input_size = spec.cfg["input_size"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(arch, conv_type, groups).to(device).to(memory_format=fmt)
    flops = model_flops(model, (1, *input_size))
    base = {"arch": arch, "conv": conv_type, "groups": benchmark_groups(conv_type, groups), "device": device.type,
            "dtype": dtype, "layout": "channels_last" if channels_last else "contiguous",
            "flops_per_image": flops, "params": sum(p.numel() for p in model.parameters()),
            "clock": clock if device.type != "cuda" else "wall", "threads": torch.get_num_threads(),
            "compiled": compiled}

    x = torch.randn(train_batch, *input_size, device=device).contiguous(memory_format=fmt)
    target = torch.randint(0, spec.cfg["num_classes"], (train_batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    net = torch.compile(model) if compiled else model

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(device, dtype):
            loss = F.cross_entropy(net(x), target)
        loss.backward()
        opt.step()

    load = load_average()
    best, median = _time_calls(train_step, device, max(warmup, 2) if compiled else warmup, iters, clock)
    yield dict(base, task="train", batch=train_batch, time_ms=best * 1e3, time_median_ms=median * 1e3,
               img_per_s=train_batch / best, load_average=load[0] if load else None)
    if compiled:
        return

    forms = [("", model)] + ([(":deployed", deploy(model))] if has_deployed_form(conv_type) else [])
    x1 = torch.randn(1, *input_size, device=device).contiguous(memory_format=fmt)
    for suffix, m in forms:
        m.eval()

        def infer(m: torch.nn.Module = m) -> None:
            with torch.no_grad(), _autocast(device, dtype):
                m(x1)

        load = load_average()
        best, median = _time_calls(infer, device, warmup, max(iters, 5), clock)
        yield dict(base, conv=conv_type + suffix, task="infer", batch=1, time_ms=best * 1e3,
                   time_median_ms=median * 1e3, img_per_s=1 / best, load_average=load[0] if load else None,
                   flops_per_image=model_flops(m, (1, *input_size)))


def add_model_ratios(rows: list[dict[str, Any]]) -> None:
    """``speedup/sc`` (time ratio SC / this) next to ``flops_sc/flops`` for every row, in place."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return r["arch"], r["task"], r["dtype"], r["layout"], r.get("compiled", False)

    sc = {key(r): r for r in rows if r["conv"] == "sc"}
    for r in rows:
        ref = sc.get(key(r))
        r["speedup/sc"] = ref["time_ms"] / r["time_ms"] if ref else None
        r["flops_sc/flops"] = ref["flops_per_image"] / r["flops_per_image"] if ref else None
