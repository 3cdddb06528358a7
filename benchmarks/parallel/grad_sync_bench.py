"""The gradient all-reduce across replicas, three ways: one per parameter, bucketed after backward, bucketed and
overlapped with backward (the default of :class:`tglc_zoo.distributed.grad_sync.GradientAverager`).

Run on D = 2 replicas of a group-parallel model (gloo on 127.0.0.1), the same steps for each variant, one after
the other in the same processes: time per training step, and the seconds the end of backward waited for the
all-reduces (the communication backward's compute did not hide). On a shared 2-core CPU the processes compete
for the cores that would overlap communication, so read the numbers as what this machine shows, not a GPU's.
"""
from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from tglc_zoo.distributed.context import DistContext
from tglc_zoo.distributed.grad_sync import GradientAverager
from tglc_zoo.distributed.modes import GroupMode

__all__ = ["VARIANTS", "measure_variants"]

# name -> (bucket MiB, overlap)
VARIANTS: dict[str, tuple[float, bool]] = {"per parameter": (0.0, False), "bucketed, after backward": (25.0, False),
                                           "bucketed, overlapped": (25.0, True)}


def measure_variants(rank: int, world: int, model: str, groups: int, batch: int, steps: int) -> dict[str, Any]:
    """In each rank of a ``(world / groups, groups)`` mesh: every variant's step time and all-reduce wait."""
    from tglc_zoo import create_model

    torch.manual_seed(0)
    ctx = DistContext(rank, world, 0, torch.device("cpu"), timeout_s=600)
    par = GroupMode().setup(lambda: create_model(model, conv_type="gc2l", groups=groups), ctx)
    shard = par.net
    shard.grad_sync.remove()
    params = list(shard.module.named_parameters())
    opt = torch.optim.SGD(par.model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)
    out: dict[str, Any] = {"params_per_rank": sum(p.numel() for _, p in params), "world": world, "groups": groups}
    shard.train()
    for name, (bucket_mb, overlap) in VARIANTS.items():
        sync = shard.grad_sync = GradientAverager(params, par.layout.data_pg, bucket_mb=bucket_mb, overlap=overlap)
        times = []
        for step in range(steps + 1):  # the first step warms up
            if step == 1:
                sync.wait_s, sync.calls = 0.0, 0
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(shard(x), y).backward()
            opt.step()
            if step:
                times.append(time.perf_counter() - t0)
        out[name] = {"step_s": sorted(times)[len(times) // 2], "wait_s_per_step": sync.wait_s / steps,
                     "allreduces_per_step": sync.calls / steps, "buckets": len(sync.buckets)}
        sync.remove()
    return out
