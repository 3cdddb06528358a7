"""Part 1 of ``python -m benchmarks.parallel``: one group-parallel shard per spawned gloo process, measured.

For N = 2 and 4 processes on this machine, WRN-28-10 (GC-2L and GC, N groups) trains a few steps; each rank
reports its parameters, parameter/gradient/momentum bytes, autograd-saved activation bytes, peak RSS and the
bytes it sent per step, counted by the collectives themselves (:mod:`.accounting`), beside the cost model's
prediction of those bytes. :func:`activation_per_image` measures what the projection extends in width.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from tglc_zoo.distributed.launch import launch

from .accounting import measure_rank, saved_activation_bytes
from .cost_model import group_comm_bytes, wrn_cifar_layers

__all__ = ["measure", "activation_per_image", "width_of"]


def width_of(model: str) -> tuple[int, int]:
    depth, k = model.removeprefix("wrn").split("_")
    return int(depth), int(k)


def measure(args: Any) -> list[dict[str, Any]]:
    depth, k = width_of(args.model)
    rows = []
    for conv_type in args.conv_types:
        for n in args.world_sizes:
            t0 = time.perf_counter()
            results = launch(measure_rank, n, (args.model, conv_type, args.batch, args.steps), timeout=args.timeout,
                             pg_timeout=args.timeout)
            predicted = group_comm_bytes(wrn_cifar_layers(depth, k), n, args.batch, conv_type=conv_type)
            for r in results:
                v = r.value
                rows.append(dict(
                    model=args.model, conv_type=conv_type, N=n, rank=v["rank"], batch=args.batch,
                    full_params=v["full_params"], params=v["params"]["total"], split_params=v["params"]["sharded"],
                    replicated_params=v["params"]["replicated"],
                    param_fraction=round(v["params"]["total"] / v["full_params"], 4),
                    param_MiB=v["param_bytes"] / 2**20, grad_MiB=v["grad_bytes"] / 2**20,
                    momentum_MiB=v["momentum_bytes"] / 2**20, activations_MiB=v["saved_activation_bytes"] / 2**20,
                    max_rss_MiB=v["max_rss_bytes"] / 2**20, sent_bytes_per_step=v["sent_bytes_per_step"],
                    predicted_bytes_per_step=predicted, sent_bytes_per_inference=v["sent_bytes_per_inference"],
                    collective_calls_per_step=v["comm_per_step"]["calls"], step_s=round(v["step_s"], 3)))
            print(f"[measure] {args.model} {conv_type} N={n}: {time.perf_counter() - t0:.0f}s", flush=True)
    return rows


def activation_per_image() -> dict[str, Any]:
    """Autograd-saved bytes per image of SC WRN-28-k (batch 1, 32×32), measured for k = 1, 2, 10."""
    from tglc_zoo.models import WideResNet

    measured = {}
    for k in (1, 2, 10):
        torch.manual_seed(0)
        model = WideResNet(depth=28, widen_factor=k, layout="cifar").train()
        with saved_activation_bytes(model) as saved:
            model(torch.randn(2, 3, 32, 32)).sum()
        measured[k] = saved["bytes"] / 2
        del model
    slope = measured[2] - measured[1]
    fit = {k: measured[1] + slope * (k - 1) for k in (10, 40, 80)}
    return dict(measured=measured, fit=fit, fit_error_k10=fit[10] / measured[10] - 1)
