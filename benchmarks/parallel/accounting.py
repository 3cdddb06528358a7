"""Measurements of one group-parallel rank: parameters, memory, bytes sent (counted by the collectives).

:func:`measure_rank` runs inside each process of :func:`tglc_zoo.distributed.launch.launch` (see
``python -m benchmarks.parallel``); :func:`saved_activation_bytes` counts what autograd keeps for backward.
"""
from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tglc_zoo.distributed import group_parallel

__all__ = ["saved_activation_bytes", "measure_rank", "tensor_bytes"]


@contextlib.contextmanager
def saved_activation_bytes(model: nn.Module) -> Iterator[dict[str, int]]:
    """Count the bytes of distinct storages autograd saves for backward inside the block (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    out = {"bytes": 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in seen and ptr not in params:
            seen.add(ptr)
            out["bytes"] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield out


def tensor_bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def measure_rank(rank: int, world: int, model_name: str, conv_type: str, batch: int, steps: int,
                 image_size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Train ``steps`` SGD steps of ``model_name`` (conv_type, groups = world) group-parallel; report this rank."""
    from tglc_zoo.registry import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, conv_type=conv_type, groups=world)
    full_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    shard = group_parallel(model, inplace=True)  # the full tensors are released here
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    shard.train()
    step_bytes, step_times, act = [], [], 0
    for _ in range(steps):
        shard.comm_stats.reset()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with saved_activation_bytes(shard) as saved:
            loss = F.cross_entropy(shard(x), y)
        loss.backward()
        opt.step()
        step_times.append(time.perf_counter() - t0)
        step_bytes.append(shard.comm_stats.as_dict())
        act = saved["bytes"]
    shard.eval()
    shard.comm_stats.reset()
    with torch.no_grad():
        shard(x)
    counts = shard.param_counts()
    momentum = tensor_bytes(s.get("momentum_buffer") for s in opt.state.values())
    return dict(
        rank=rank, world=world, model=model_name, conv_type=conv_type, batch=batch, image_size=image_size,
        full_params=full_params, params=counts, param_bytes=tensor_bytes(shard.parameters()),
        grad_bytes=tensor_bytes(p.grad for p in shard.parameters()), momentum_bytes=momentum,
        buffer_bytes=tensor_bytes(shard.buffers()), saved_activation_bytes=act,
        sent_bytes_per_step=step_bytes[-1]["sent_bytes"], comm_per_step=step_bytes[-1],
        sent_bytes_per_inference=shard.comm_stats.sent_bytes, step_s=min(step_times),
        max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, threads=torch.get_num_threads())
