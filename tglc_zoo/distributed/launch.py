"""Run a function on N local processes joined in a gloo group on 127.0.0.1 — with a deadline.

Used by the tests and ``python -m benchmarks.parallel``. Every rank's outcome is collected: its return
value, its traceback, or how it ended (exit code, or killed at the deadline). Nothing can hang: the
process group gets ``pg_timeout`` (collectives raise after it) and the whole run ``timeout``, after
which surviving processes are terminated.
"""
from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import pickle
import queue
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TglcZooError

__all__ = ["RankResult", "LaunchError", "free_port", "launch"]


@dataclass
class RankResult:
    rank: int
    ok: bool
    value: Any = None
    error: str = ""
    exitcode: int | None = None

    def describe(self) -> str:
        if self.ok:
            return f"rank {self.rank}: ok"
        return f"rank {self.rank}: {self.error.strip() or f'exited with code {self.exitcode}'}"


class LaunchError(TglcZooError, RuntimeError):
    """At least one rank failed; the message holds every rank's outcome (still a ``RuntimeError``, as before)."""

    def __init__(self, results: Sequence[RankResult]) -> None:
        self.results = list(results)
        failed = [r for r in self.results if not r.ok]
        super().__init__(f"{len(failed)} of {len(self.results)} ranks failed:\n" +
                         "\n".join(r.describe() for r in self.results))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(fn: Callable[..., Any], rank: int, world: int, port: int, pg_timeout: float, threads: int,
           args: tuple[Any, ...], results: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=pg_timeout))
        # plain pickle: tensors travel as bytes, not as shared-memory handles that die with this process
        value = pickle.dumps(fn(rank, world, *args))
    except BaseException:  # report everything, including KeyboardInterrupt/SystemExit
        results.put((rank, False, None, traceback.format_exc()))
        results.close()
        results.join_thread()
        os._exit(1)  # tearing the group down could wait on the failed peer
    results.put((rank, True, value, ""))
    dist.destroy_process_group()


def launch(fn: Callable[..., Any], world_size: int, args: Sequence[Any] = (), *, timeout: float = 120.0,
           pg_timeout: float = 30.0, threads: int = 1, grace: float | None = None,
           raise_on_error: bool = True) -> list[RankResult]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` spawned processes in one gloo group.

    Args:
        fn: a picklable (module-level) function; its return value must be picklable.
        timeout: seconds for the whole run; processes still alive then are killed and reported.
        pg_timeout: the process group's timeout: a collective waiting longer on a peer raises.
        threads: ``torch.set_num_threads`` in each process.
        grace: once a rank has failed, seconds the others get to finish (default ``pg_timeout + 5``: enough
            for a collective waiting on the failed rank to time out and report).
        raise_on_error: raise :class:`LaunchError` (naming every rank's outcome) when any rank failed.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(fn, r, world_size, port, pg_timeout, threads, tuple(args), results),
                         daemon=True, name=f"tglc-gp-rank{r}") for r in range(world_size)]
    for p in procs:
        p.start()
    outcome: dict[int, RankResult] = {}
    grace = pg_timeout + 5.0 if grace is None else grace
    deadline = time.monotonic() + timeout
    try:
        while len(outcome) < world_size and time.monotonic() < deadline:
            if any(not r.ok for r in outcome.values()) or any(p.exitcode not in (None, 0) for p in procs):
                deadline = min(deadline, time.monotonic() + grace)
            try:
                rank, ok, value, error = results.get(timeout=0.1)
                outcome[rank] = RankResult(rank, ok, pickle.loads(value) if ok else None, error)
            except queue.Empty:
                if all(not p.is_alive() for p in procs) and results.empty():
                    time.sleep(0.2)  # let a last message through the pipe
                    if results.empty():
                        break
    finally:
        killed: set[int] = set()
        for p in procs:
            p.join(timeout=max(0.0, min(5.0, deadline - time.monotonic())))
        for r, p in enumerate(procs):
            if p.is_alive():
                killed.add(r)
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        results.close()
    final: list[RankResult] = []
    for r, p in enumerate(procs):
        res = outcome.get(r)
        if res is None:
            why = ("still running at the deadline (another rank failed, or the run's timeout passed); killed"
                   if r in killed else f"died without reporting (exit code {p.exitcode})")
            res = RankResult(r, False, error=why)
        res.exitcode = p.exitcode
        final.append(res)
    if raise_on_error and not all(r.ok for r in final):
        raise LaunchError(final)
    return final

