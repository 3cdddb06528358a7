"""Worker functions for the (data, group) mesh tests, run inside spawned gloo processes."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tglc_zoo import create_model
from tglc_zoo.distributed.context import DistContext
from tglc_zoo.distributed.modes import GroupMode

LR = 0.01


def _model(groups: int) -> torch.nn.Module:
    return create_model("wrn16_2", conv_type="gc2l", groups=groups, num_classes=10)


def _batch(step: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(500 + step)
    return torch.randn(8, 3, 8, 8, generator=g).to(dtype), torch.randint(0, 10, (8,), generator=g)


def _reference(groups: int, data: int, steps: int, seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """One process: the same model and seed; each global batch split into ``data`` micro-batches (what the
    replicas' BatchNorms see), their gradients averaged, then one SGD step."""
    torch.manual_seed(seed)
    ref = _model(groups).train()
    opt = torch.optim.SGD(ref.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    for step in range(steps):
        x, y = _batch(step)
        opt.zero_grad(set_to_none=True)
        for xm, ym in zip(x.chunk(data), y.chunk(data)):
            (F.cross_entropy(ref(xm), ym) / data).backward()
        opt.step()
    return ref, opt


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / max(1.0, float(b.double().abs().max()))) if a.numel() else 0.0


def _setup(rank: int, world: int, groups: int, seed: int) -> Any:
    torch.manual_seed(seed)
    ctx = DistContext(rank, world, 0, torch.device("cpu"), timeout_s=60.0)
    return GroupMode().setup(lambda: _model(groups), ctx)


def _train(par: Any, steps: int, start: int = 0, opt: Any = None) -> torch.optim.Optimizer:
    layout = par.layout
    opt = opt or torch.optim.SGD(par.model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    par.net.train()
    for step in range(start, start + steps):
        x, y = _batch(step)
        lo = layout.data_rank * (len(x) // layout.data)
        xs, ys = x[lo:lo + len(x) // layout.data], y[lo:lo + len(y) // layout.data]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(par.net(xs), ys).backward()
        opt.step()
    return opt


def _compare(par: Any, ref: torch.nn.Module) -> float:
    shard = par.net
    sharded = set(shard.plan.sharded)
    ref_state = ref.state_dict()
    worst = 0.0
    for k, v in shard.local_state_dict().items():
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # replicas see half-batches: their BN statistics follow replica 0, as under DDP
        full = ref_state[k]
        want = shard.plan.local_slice(full, par.layout.group_rank, k) if k in sharded else full
        worst = max(worst, _maxdiff(v, want))
    return worst


def sgd_step(rank: int, world: int, groups: int, steps: int) -> dict[str, Any]:
    """``steps`` float64 SGD steps on the (world / groups, groups) mesh against the single-process run."""
    torch.set_default_dtype(torch.float64)
    try:
        data = world // groups
        ref, _ = _reference(groups, data, steps, seed=7)
        init_ref = copy.deepcopy(ref)
        torch.manual_seed(7)
        init_full = _model(groups).state_dict()
        par = _setup(rank, world, groups, seed=7)
        init = max(_maxdiff(v, par.net.plan.local_slice(init_full[k], par.layout.group_rank, k)
                            if k in set(par.net.plan.sharded) else init_full[k])
                   for k, v in par.net.local_state_dict().items())
        _train(par, steps)
        del init_ref
        return {"init": init, "after": _compare(par, ref), "layout": par.layout.describe(),
                "params": sum(p.numel() for p in par.model.parameters()),
                "full_params": sum(p.numel() for p in ref.parameters()),
                "allreduces": par.net.grad_sync.calls if par.net.grad_sync is not None else 0}
    finally:
        torch.set_default_dtype(torch.float32)


def sharded_resume(rank: int, world: int, groups: int, folder: str, phase: str) -> dict[str, Any]:
    """``save``: 2 steps, a DCP checkpoint, 2 more steps; ``load`` (any D): load it, 2 steps. Rank 0 returns the
    full states (gathered for the comparison only) after step 2 and step 4."""
    from tglc_zoo.distributed import gather_training_state

    torch.set_default_dtype(torch.float64)
    try:
        par = _setup(rank, world, groups, seed=3)
        mode = GroupMode()
        opt = torch.optim.SGD(par.model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
        rng: dict[str, torch.Tensor] = {}
        if phase == "save":
            _train(par, 2, opt=opt)
            mode.sync_buffers(par)
            mode.save_sharded(Path(folder), par, opt, {"marker": torch.tensor([rank])}, lambda p: None)
        else:
            rng = mode.load_sharded(Path(folder), par, opt)
        at2 = gather_training_state(par.net, opt)
        _train(par, 2, start=2, opt=opt)
        mode.sync_buffers(par)
        at4 = par.net.full_state_dict()
        return {"at2": at2 if rank == 0 else None, "at4": at4 if rank == 0 else None,
                "rng": {k: v.tolist() for k, v in rng.items()}}
    finally:
        torch.set_default_dtype(torch.float32)


def continue_single(state: tuple[dict[str, Any], dict[str, Any]], groups: int, start: int, steps: int
                    ) -> dict[str, torch.Tensor]:
    """One process from a gathered state: ``steps`` SGD steps on whole batches (one replica)."""
    torch.set_default_dtype(torch.float64)
    try:
        model = _model(groups).train()
        model.load_state_dict(state[0])
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
        opt.load_state_dict(state[1])
        for step in range(start, start + steps):
            x, y = _batch(step)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return model.state_dict()
    finally:
        torch.set_default_dtype(torch.float32)


def sliced_weights(rank: int, world: int, path: str) -> dict[str, Any]:
    """A single-process safetensors file read into a (world/2, 2) mesh shard, only this rank's rows."""
    from tglc_zoo.checkpoint.safetensors_io import load_weights

    par = _setup(rank, world, 2, seed=99)  # other initial weights than the file's
    GroupMode().load_weights(par, Path(path))
    full = par.net.full_state_dict()
    want = load_weights(Path(path))
    return {"diff": max(_maxdiff(full[k], want[k]) for k in want)}
