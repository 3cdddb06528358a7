"""Timing with torch.utils.benchmark: the minimum over blocks and interleaved rounds.

Two clocks: ``wall`` (``time.perf_counter``, the default: what a user waits for) and ``cpu``
(``time.process_time``: CPU seconds of this process). On a CPU shared with other jobs, wall time
mostly measures the scheduler; with ``torch.set_num_threads(1)`` the process CPU time is the compute
time of the kernels themselves (with more threads, spin-waiting would count too, hence one thread).
CUDA runs always use the wall clock (the Timer synchronises the device).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils import benchmark

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Timing:
    """Seconds per call: ``best`` is the minimum block mean over all rounds, ``median`` the lowest round median."""

    best: float
    median: float
    runs: int

    def merge(self, other: Timing) -> Timing:
        return Timing(min(self.best, other.best), min(self.median, other.median), self.runs + other.runs)


def time_once(fn: Callable[[], object], min_run_time: float, clock: str = "wall") -> Timing:
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; valid: {list(CLOCKS)}")
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(),
                        timer=CLOCKS[clock]).blocked_autorange(min_run_time=min_run_time)
    return Timing(min(m.times), m.median, len(m.times))


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int, min_run_time: float,
                     warmup: int = 1, clock: str = "wall") -> dict[str, Timing]:
    """Time every candidate in turn, ``rounds`` times, so that load changes hit all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, Timing] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time_once(fn, min_run_time, clock)
            out[name] = out[name].merge(t) if name in out else t
    return out
