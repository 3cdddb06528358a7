"""The collectives of group parallelism, as autograd Functions, with byte counters.

Activations are sharded by channel: rank k holds channels ``[k*c, (k+1)*c)`` of every body tensor.
Three movements exist, each with the backward that makes gradients exact:

* :func:`gather_partial` — the GC-2L coarse level. Forward: all-gather the N representative
  channels (B×1×H×W per rank) into B×N×H×W on every rank. Each rank then applies its own slice
  ``S_k`` of ``R̄0ᵀ``, so the gradient each rank holds for the gathered tensor is only *its part*
  of the total; backward: reduce-scatter (sum over ranks, keep this rank's channels).
* :func:`gather_replicated` — the head (and other layers that mix pooled features). Forward:
  all-gather pooled features so that the replicated classifier sees the full vector. Everything
  downstream is computed identically on every rank, so every rank already holds the full, identical
  gradient; backward: keep this rank's slice (no communication — a reduce-scatter here would count
  the loss N times).
* :func:`shard_replicated` — a replicated tensor entering split work (a replicated stem's output, a
  squeeze-excitation gate, a per-channel parameter). Forward: take this rank's channel slice. Backward:
  all-gather the slices' gradients, so the replicated producer receives the full gradient on every rank.

DTensor's default ``redistribute`` is not used on purpose: its all-gather backward does not
distinguish the "partial" and "replicated" cases above.

Every call is counted in a :class:`CommStats`: the payload this rank hands to the collective and
the bytes it sends under a ring (or direct) algorithm, ``(N − 1) × chunk``, where ``chunk`` is one
rank's share — for both all-gather and reduce-scatter this is the minimum any rank must send.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ..errors import CollectiveError

__all__ = ["CommStats", "OpStats", "CollectiveError", "gather_partial", "gather_replicated", "shard_replicated",
           "group_rank_size", "PEER_FAILURE", "GroupComm"]

PEER_FAILURE = ("a peer process died, stalled past the process group's timeout (tglc-train --dist-timeout; "
                "init_process_group(timeout=...))")
"""The likely causes, in every error of a failed collective."""



@dataclass
class OpStats:
    calls: int = 0
    payload_bytes: int = 0
    sent_bytes: int = 0


@dataclass
class CommStats:
    """Byte counters per operation (``"coarse_allgather"``, ``"coarse_reducescatter"``, ...)."""

    ops: dict[str, OpStats] = field(default_factory=dict)

    def add(self, op: str, payload_bytes: int, sent_bytes: int) -> None:
        s = self.ops.setdefault(op, OpStats())
        s.calls += 1
        s.payload_bytes += payload_bytes
        s.sent_bytes += sent_bytes

    @property
    def sent_bytes(self) -> int:
        return sum(s.sent_bytes for s in self.ops.values())

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.ops.values())

    def reset(self) -> None:
        self.ops.clear()

    def as_dict(self) -> dict[str, Any]:
        return {"sent_bytes": self.sent_bytes, "calls": self.calls,
                "ops": {k: vars(v).copy() for k, v in sorted(self.ops.items())}}


def group_rank_size(group: dist.ProcessGroup | None) -> tuple[int, int]:
    return dist.get_rank(group), dist.get_world_size(group)


_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def _run(what: str, fn: Any, out: torch.Tensor, inp: torch.Tensor, group: dist.ProcessGroup | None,
         where: str) -> None:
    try:
        fn(out, inp, group=group)
    except Exception as e:  # gloo/NCCL raise RuntimeError or DistBackendError with terse text
        rank = dist.get_rank(group) if dist.is_initialized() else -1
        raise CollectiveError(
            f"group-parallel {what} at {where or 'unnamed layer'} failed on rank {rank} "
            f"(tensor {tuple(inp.shape)} {inp.dtype}): {PEER_FAILURE}, or runs a different model/batch shape. "
            f"Backend error: {type(e).__name__}: {e}") from e


def _to_front(x: torch.Tensor) -> torch.Tensor:
    """(B, c, ...) -> contiguous (c, B, ...): collectives concatenate along dim 0."""
    return x.transpose(0, 1).contiguous()


def _gather_channels(x: torch.Tensor, group: dist.ProcessGroup | None, stats: CommStats | None, op: str,
                     where: str) -> torch.Tensor:
    _, world = group_rank_size(group)
    front = _to_front(x)
    out = front.new_empty((world * front.shape[0], *front.shape[1:]))
    _run("all-gather", _all_gather, out, front, group, where)
    if stats is not None:
        chunk = front.numel() * front.element_size()
        stats.add(op, chunk, (world - 1) * chunk)
    return out.transpose(0, 1)


def _reduce_scatter_channels(g: torch.Tensor, group: dist.ProcessGroup | None, stats: CommStats | None, op: str,
                             where: str) -> torch.Tensor:
    _, world = group_rank_size(group)
    front = _to_front(g)
    out = front.new_empty((front.shape[0] // world, *front.shape[1:]))
    _run("reduce-scatter", _reduce_scatter, out, front, group, where)
    if stats is not None:
        chunk = out.numel() * out.element_size()
        stats.add(op, front.numel() * front.element_size(), (world - 1) * chunk)
    return out.transpose(0, 1)


def _local_slice(x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    rank, world = group_rank_size(group)
    c = x.shape[1] // world
    return x[:, rank * c:(rank + 1) * c]


class _GatherPartial(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, stats: Any, where: str) -> torch.Tensor:
        ctx.group, ctx.stats, ctx.where = group, stats, where
        return _gather_channels(x, group, stats, "coarse_allgather", where)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        return _reduce_scatter_channels(g, ctx.group, ctx.stats, "coarse_reducescatter", ctx.where), None, None, None


class _GatherReplicated(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, stats: Any, where: str, op: str) -> torch.Tensor:
        ctx.group = group
        return _gather_channels(x, group, stats, op, where)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        return _local_slice(g, ctx.group), None, None, None, None


class _ShardReplicated(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, stats: Any, where: str) -> torch.Tensor:
        ctx.group, ctx.stats, ctx.where = group, stats, where
        return _local_slice(x, group).contiguous()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        return _gather_channels(g, ctx.group, ctx.stats, "slice_grad_allgather", ctx.where), None, None, None


def gather_partial(x: torch.Tensor, group: dist.ProcessGroup | None = None, stats: CommStats | None = None,
                   where: str = "") -> torch.Tensor:
    """All-gather channel shards (forward) / reduce-scatter their gradient (backward): (B, c, ...) -> (B, N·c, ...)."""
    return _GatherPartial.apply(x, group, stats, where)


def gather_replicated(x: torch.Tensor, group: dist.ProcessGroup | None = None, stats: CommStats | None = None,
                      where: str = "", op: str = "head_allgather") -> torch.Tensor:
    """All-gather channel shards for replicated downstream work; backward keeps this rank's gradient slice.

    ``op`` names the counter: ``"head_allgather"`` (the classifier's features) or ``"gate_allgather"``
    (pooled features mixed inside the body, e.g. squeeze-excitation)."""
    return _GatherReplicated.apply(x, group, stats, where, op)


def shard_replicated(x: torch.Tensor, group: dist.ProcessGroup | None = None, stats: CommStats | None = None,
                     where: str = "") -> torch.Tensor:
    """This rank's channel slice of a replicated tensor; backward all-gathers the slices' gradients."""
    return _ShardReplicated.apply(x, group, stats, where)


class GroupComm:
    """The collectives a split layer may run (:class:`tglc_zoo.layers.ChannelComm`), over one process group.

    Not a module and not copied: every local layer of one shard shares it (``__deepcopy__`` returns itself).
    """

    def __init__(self, group: dist.ProcessGroup | None, stats: CommStats | None) -> None:
        self.group, self.stats = group, stats

    def gather_partial(self, x: torch.Tensor, where: str) -> torch.Tensor:
        return gather_partial(x, self.group, self.stats, where)

    def __deepcopy__(self, memo: dict[int, Any]) -> GroupComm:
        return self
