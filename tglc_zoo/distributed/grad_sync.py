"""Averaging gradients over the data dimension of the mesh: bucketed, and overlapped with backward.

Each group rank holds 1/N of the parameters, so each rank all-reduces *its own shard's* gradients with
the same group rank of the other replicas (:attr:`~.mesh.ParallelLayout.data_pg`). As in
DistributedDataParallel, the parameters are packed into buckets of about ``bucket_mb`` MiB in reverse
order (roughly the order backward produces their gradients); a bucket's all-reduce starts, asynchronously,
as soon as backward has accumulated the last of its gradients, so communication runs while backward goes
on; the end of backward (an autograd-engine callback) waits for every bucket and writes the averages
back. ``bucket_mb=0`` sends one all-reduce per parameter; ``overlap=False`` sends every bucket after
backward. ``python -m benchmarks.parallel --grad-sync`` (``benchmarks/parallel/grad_sync_bench.py``) measures the three.

Exactness: the all-reduce sums the replicas' gradients and divides by D, so a D × N step equals the
single-process step on the same global batch split into D micro-batches (which is what each replica's
BatchNorm sees) up to the rounding of that sum.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

from ..errors import CollectiveError
from .collectives import PEER_FAILURE

__all__ = ["GradientAverager"]


class _Bucket:
    def __init__(self, params: list[torch.nn.Parameter], names: list[str]) -> None:
        self.params, self.names = params, names
        self.ready: set[int] = set()
        self.buffer: torch.Tensor | None = None
        self.work: Any = None

    def describe(self) -> str:
        first, last = self.names[0], self.names[-1]
        return f"{len(self.params)} parameters {first!r}..{last!r}" if len(self.params) > 1 else repr(first)


class GradientAverager:
    """Average the gradients of ``params`` over ``group`` (see the module docstring).

    Attributes:
        enabled: ``False`` inside :meth:`no_sync` (gradient accumulation's earlier micro-batches).
        calls, sent_bytes: all-reduces launched and the bytes this rank sent (ring: ``2 (D−1)/D`` of each bucket).
        wait_s: seconds the end of backward spent waiting for all-reduces (the communication not hidden behind
            backward's compute).
    """

    def __init__(self, named_params: Sequence[tuple[str, torch.nn.Parameter]], group: dist.ProcessGroup | None, *,
                 bucket_mb: float = 25.0, overlap: bool = True) -> None:
        self.group, self.overlap, self.enabled = group, overlap, True
        self.world = dist.get_world_size(group)
        trainable = [(n, p) for n, p in named_params if p.requires_grad]
        self.buckets: list[_Bucket] = []
        limit = bucket_mb * 2 ** 20
        current: list[tuple[str, torch.nn.Parameter]] = []
        size = 0
        for name, p in reversed(trainable):
            current.append((name, p))
            size += p.numel() * p.element_size()
            if size >= limit:
                self.buckets.append(_Bucket([q for _, q in current], [n for n, _ in current]))
                current, size = [], 0
        if current:
            self.buckets.append(_Bucket([q for _, q in current], [n for n, _ in current]))
        self._where = {id(p): (b, i) for b in self.buckets for i, p in enumerate(b.params)}
        self._queued = False
        self.calls = self.sent_bytes = 0
        self.wait_s = 0.0
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for _, p in trainable]

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward inside accumulates gradients locally; the next backward outside averages the sums."""
        old, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = old

    def _on_grad(self, p: torch.Tensor) -> None:
        if not self.enabled or self.world == 1:
            return
        if not self._queued:
            torch.autograd.Variable._execution_engine.queue_callback(self._finish)
            self._queued = True
        bucket, i = self._where[id(p)]
        bucket.ready.add(i)
        if self.overlap and len(bucket.ready) == len(bucket.params):
            self._launch(bucket)

    def _launch(self, bucket: _Bucket) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in bucket.params]
        flat = torch.cat([g.reshape(-1) for g in grads]) if len(grads) > 1 else grads[0].reshape(-1).clone()
        bucket.buffer = flat
        try:
            bucket.work = dist.all_reduce(flat, group=self.group, async_op=True)
        except Exception as e:
            raise self._error(bucket, e) from e
        self.calls += 1
        self.sent_bytes += 2 * (self.world - 1) * flat.numel() * flat.element_size() // self.world

    def _error(self, bucket: _Bucket, e: Exception) -> CollectiveError:
        rank = dist.get_rank() if dist.is_initialized() else -1
        return CollectiveError(f"data-parallel gradient all-reduce of {bucket.describe()} failed on rank {rank}: "
                               f"{PEER_FAILURE}, or a replica runs another model. "
                               f"Backend error: {type(e).__name__}: {e}")

    def _finish(self) -> None:
        self._queued = False
        for bucket in self.buckets:
            if bucket.work is None:
                self._launch(bucket)  # not overlapped, or a bucket with a parameter that got no gradient
        t0 = time.perf_counter()
        for bucket in self.buckets:
            try:
                bucket.work.wait()
            except Exception as e:
                raise self._error(bucket, e) from e
        self.wait_s += time.perf_counter() - t0
        for bucket in self.buckets:
            assert bucket.buffer is not None
            bucket.buffer.div_(self.world)
            offset = 0
            for p in bucket.params:
                n = p.numel()
                value = bucket.buffer[offset:offset + n].view_as(p)
                if p.grad is None:
                    p.grad = value.clone()
                else:
                    p.grad.copy_(value)
                offset += n
            bucket.work, bucket.buffer = None, None
            bucket.ready.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
