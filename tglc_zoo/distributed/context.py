"""Process groups for multi-process training under ``torchrun`` (gloo on CPU, NCCL on CUDA), and the
run's place in one.

The process group's timeout is the run's ``--dist-timeout`` (default :data:`DEFAULT_TIMEOUT_S`): a
collective that waits longer on a dead or stalled peer raises, naming itself. Under ``torchrun`` the
group is joined through :func:`.rendezvous.round_store`, so workers restarted by ``--max-restarts`` can
join again (torch's own ``env://`` join fails there; see that module).
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import CollectiveError
from .collectives import PEER_FAILURE
from .rendezvous import agent_store, round_store

__all__ = ["DistContext", "DEFAULT_TIMEOUT_S", "setup_distributed", "teardown_distributed", "resolve_device",
           "all_reduce_sum", "named_collective"]

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; other strings as given."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid --device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device!r} asked for CUDA but torch.cuda.is_available() is False")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def setup_distributed(device: str = "auto", backend: str | None = None,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1), else run alone.

    ``timeout_s``: how long a collective may wait on a peer before it raises.
    """
    if not timeout_s > 0:
        raise ValueError(f"the process-group timeout must be a positive number of seconds, got {timeout_s!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, timeout_s=timeout_s)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialized_here = False
    if not dist.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        timeout = datetime.timedelta(seconds=timeout_s)
        store = agent_store(timeout)
        if store is None:
            dist.init_process_group(backend=backend, timeout=timeout)
        else:
            rank = int(os.environ["RANK"])
            dist.init_process_group(backend=backend, timeout=timeout, rank=rank, world_size=world,
                                    store=round_store(store, rank, world, timeout))
        initialized_here = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, initialized_here, timeout_s)


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], ctx: DistContext, group: dist.ProcessGroup | None = None,
                   op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> list[float]:
    """Sum (or ``op``) a few numbers over the ranks of ``group`` (default: all), a no-op when running alone."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64,
                     device=ctx.device if dist.get_backend(group) == "nccl" else torch.device("cpu"))
    dist.all_reduce(t, op=op, group=group)
    return t.tolist()


@contextlib.contextmanager
def named_collective(what: str, ctx: DistContext) -> Iterator[None]:
    """Turn a backend failure inside (a dead or stalled peer) into a :class:`CollectiveError` that names ``what``."""
    try:
        yield
    except CollectiveError:
        raise
    except RuntimeError as e:  # gloo / NCCL raise RuntimeError (DistBackendError) with terse text
        if not ctx.distributed:
            raise
        raise CollectiveError(f"{what} failed on rank {ctx.rank} ({ctx.timeout_s:g} s timeout): {PEER_FAILURE}. "
                              f"Backend error: {type(e).__name__}: {e}") from e
