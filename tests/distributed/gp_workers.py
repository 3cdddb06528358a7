"""Worker functions run inside spawned gloo processes (module level so ``spawn`` can pickle them)."""
from __future__ import annotations

import copy
import os
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from tglc_zoo import create_model
from tglc_zoo.distributed import group_parallel
from tglc_zoo.models import MobileNetV2, WideResNet

# name -> (builder kwargs, input (B, C, H, W)); inputs keep >= 8 values per channel in the last BatchNorm,
# so train-mode BN is well conditioned and the comparison measures the sharding, not round-off blow-up
CASES: dict[str, tuple[dict[str, Any], tuple[int, int, int, int]]] = {
    "wrn16_2": (dict(arch="wrn16_2"), (4, 3, 8, 8)),
    "wrn16_2_fused": (dict(arch="wrn16_2", conv_kwargs={"impl": "fused"}), (4, 3, 8, 8)),
    "wrn34_1_imagenet": (dict(arch="wrn34_imagenet"), (2, 3, 64, 64)),
    "mobilenetv2": (dict(arch="mobilenetv2"), (4, 3, 64, 64)),
    # any CNN: timm / torchvision models with every eligible conv replaced (tglc_zoo.convert's surgery)
    "timm_resnet18": (dict(base="resnet18"), (4, 3, 64, 64)),
    "timm_resnet50": (dict(base="resnet50"), (2, 3, 64, 64)),
    "tv_resnet18": (dict(base="torchvision:resnet18"), (4, 3, 64, 64)),
    "tv_mobilenet_v2": (dict(base="torchvision:mobilenet_v2", dropout=0.0), (4, 3, 64, 64)),
    # squeeze-excitation kept dense: its pooled features are all-gathered, its gates sliced back
    "timm_mobilenetv3_small_se": (dict(base="mobilenetv3_small_050", exclude="*.se.*"), (4, 3, 64, 64)),
}


def build_converted(base: str, conv_type: str, groups: int, exclude: str | None = None,
                    **base_args: Any) -> torch.nn.Module:
    """The converted architecture of a timm / torchvision CNN (every eligible conv replaced), freshly initialised:
    the sharding is what is tested, so no fit is needed."""
    from tglc_zoo.convert import GroupingSpec, build_grouped, choose_convs
    from tglc_zoo.convert.base import build_base

    with torch.device("meta"):
        dense = build_base(base, dict(base_args, num_classes=10))
    layers = tuple(c.name for c in choose_convs(dense, groups, exclude=exclude) if c.replace)
    return build_grouped(GroupingSpec(base, dict(base_args, num_classes=10), conv_type, groups, layers))


# SGD as in the paper's recipe, but with a step size that keeps these tiny-batch models out of the chaotic
# regime, where float32 round-off (1e-7) would be amplified to O(1) in 3 steps with or without sharding
LR = 0.01


def build(case: str, conv_type: str, groups: int, dtype: torch.dtype) -> torch.nn.Module:
    spec = dict(CASES[case][0])
    torch.manual_seed(1234)
    if "base" in spec:
        return build_converted(spec.pop("base"), conv_type, groups, **spec).to(dtype)
    arch = spec.pop("arch")
    if arch == "wrn34_imagenet":
        model = WideResNet(depth=34, widen_factor=1, layout="imagenet", conv_type=conv_type, groups=groups,
                           num_classes=10, **spec)
    elif arch == "mobilenetv2":
        model = MobileNetV2(conv_type=conv_type, groups=groups, num_classes=10, drop_rate=0.0, **spec)
    else:
        model = create_model(arch, conv_type=conv_type, groups=groups, num_classes=10, **spec)
    return model.to(dtype)


def _data(case: str, dtype: torch.dtype, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    shape = CASES[case][1]
    return torch.randn(shape, generator=g).to(dtype), torch.randint(0, 10, (shape[0],), generator=g)


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |b|): absolute for values up to 1, relative above."""
    if not a.numel():
        return 0.0
    return float((a.double() - b.double()).abs().max() / max(1.0, float(b.double().abs().max())))


def _slice(shard: Any, key: str, full: torch.Tensor) -> torch.Tensor:
    return shard.plan.local_slice(full, shard.rank, key) if key in set(shard.plan.sharded) else full


def equivalence(rank: int, world: int, case: str, conv_type: str, dtype_name: str, steps: int,
                shard_stem: bool = True) -> dict[str, Any]:
    """Forward/loss/gradients in train and eval mode, then ``steps`` SGD steps, against the single-process model."""
    dtype = getattr(torch, dtype_name)
    model = build(case, conv_type, world, dtype)
    ref = copy.deepcopy(model)
    shard = group_parallel(model, shard_stem=shard_stem, example_input=CASES[case][1])
    out: dict[str, Any] = {"params": shard.param_counts(), "describe": shard.describe(),
                           "replicated": list(shard.plan.replicated), "sharded": list(shard.plan.sharded)}
    full_params = dict(ref.named_parameters())
    out["full_sharded_params"] = sum(full_params[k].numel() for k in shard.plan.sharded if k in full_params)
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        shard.train(mode == "train")
        ref.zero_grad(set_to_none=True)
        shard.zero_grad(set_to_none=True)
        x, y = _data(case, dtype)
        ref_logits = ref(x)
        ref_loss = F.cross_entropy(ref_logits, y)
        ref_loss.backward()
        logits = shard(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        grad_diff, worst = 0.0, ""
        for k, p in shard.module.named_parameters():
            d = _maxdiff(p.grad, _slice(shard, k, full_params[k].grad))
            if d >= grad_diff:
                grad_diff, worst = d, k
        ref_buffers = dict(ref.named_buffers())
        buf_diff = max(_maxdiff(b, _slice(shard, k, ref_buffers[k])) for k, b in shard.module.named_buffers())
        out[mode] = dict(logits=_maxdiff(logits, ref_logits), loss=abs(float(loss) - float(ref_loss)),
                         grad=grad_diff, worst_grad=worst, buffers=buf_diff,
                         grads_checked=sum(1 for _ in shard.module.parameters()),
                         grad_scale=max(float(p.grad.abs().max()) for p in ref.parameters()))
    # optimisation: `steps` SGD steps with momentum and weight decay from the same start
    model = build(case, conv_type, world, dtype)
    ref = copy.deepcopy(model)
    shard = group_parallel(model, shard_stem=shard_stem, example_input=CASES[case][1])
    ref.train()
    shard.train()
    opt_ref = torch.optim.SGD(ref.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    opt = torch.optim.SGD(shard.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    shard.comm_stats.reset()
    for step in range(steps):
        x, y = _data(case, dtype, step)
        for m, o in ((ref, opt_ref), (shard, opt)):
            o.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y).backward()
            o.step()
    out["steps"] = steps
    out["bytes_per_step"] = shard.comm_stats.sent_bytes // max(steps, 1)
    out["comm"] = shard.comm_stats.as_dict()
    ref_state = ref.state_dict()
    local = shard.local_state_dict()
    out["sgd_local"] = max(_maxdiff(v, _slice(shard, k, ref_state[k])) for k, v in local.items())
    full = shard.full_state_dict()
    out["full_keys_match"] = list(full) == list(ref_state)
    out["sgd_full"] = max(_maxdiff(full[k], ref_state[k]) for k in ref_state)
    return out


def mismatch(rank: int, world: int) -> dict[str, str]:
    """Errors raised on every rank for a world size != groups and for shuffle/flgc models."""
    from tglc_zoo.distributed import GroupParallelError

    msgs: dict[str, str] = {}
    for name, conv_type, groups in (("world", "gc2l", 2 * world), ("shuffle", "shuffle", world),
                                    ("flgc", "flgc", world)):
        try:
            group_parallel(create_model("wrn16_2", conv_type=conv_type, groups=groups))
        except GroupParallelError as e:
            msgs[name] = str(e)
    return msgs


def faulty(rank: int, world: int, fault: str, stall_s: float) -> str:
    """Rank ``world-1`` dies (``exit``) or stalls (``stall``) before its first collective; others run."""
    model = create_model("wrn16_2", conv_type="gc2l", groups=world)
    shard = group_parallel(model)
    x = torch.randn(2, 3, 8, 8)
    if rank == world - 1:
        if fault == "exit":
            os._exit(3)
        time.sleep(stall_s)
    t0 = time.monotonic()
    try:
        shard(x).sum().backward()
        dist.barrier()
    except Exception as e:
        raise RuntimeError(f"rank {rank} failed after {time.monotonic() - t0:.1f}s") from e
    return "finished"


def checkpoint_and_dropout(rank: int, world: int, folder: str) -> dict[str, Any]:
    """Per-rank files written online, reloaded into a shard built on the meta device; synced head dropout."""
    from tglc_zoo.distributed import load_rank_state_dict, save_shard_files

    model = build("wrn16_2", "gc2l", world, torch.float32)
    shard = group_parallel(model)
    x, _ = _data("wrn16_2", torch.float32)
    shard.train()
    shard(x)  # update BN running statistics so buffers differ from their initial values
    shard.eval()
    expected = shard(x).detach()
    save_shard_files(shard, folder)
    full = shard.full_state_dict()
    with torch.device("meta"):
        meta_model = create_model("wrn16_2", conv_type="gc2l", groups=world, num_classes=10)
    fresh = group_parallel(meta_model).to_empty(device="cpu")
    fresh.load_local_state_dict(load_rank_state_dict(folder, rank, world))
    fresh.eval()
    reloaded = fresh(x).detach()
    # head dropout: the same mask on every rank
    drop_model = create_model("wrn16_2", conv_type="gc2l", groups=world, num_classes=10, drop_rate=0.5)
    drop_shard = group_parallel(drop_model).train()
    dropped = drop_shard(x).detach()
    # sync_inputs: ranks hand in different batches (as with per-rank augmentation); rank 0's is used
    synced = group_parallel(build("wrn16_2", "gc2l", world, torch.float32)).train()
    synced.sync_inputs = True
    plain = group_parallel(build("wrn16_2", "gc2l", world, torch.float32)).train()
    sync_diff = _maxdiff(synced(x + rank).detach(), plain(x).detach())
    return dict(reload_diff=_maxdiff(reloaded, expected), logits=expected.tolist(), dropped=dropped.tolist(),
                sync_diff=sync_diff, sync_ops=sorted(synced.comm_stats.ops),
                full={k: v.clone() for k, v in full.items()} if rank == 0 else None)


def suite(rank: int, world: int, tasks: list[tuple[str, tuple[Any, ...]]]) -> dict[str, Any]:
    """Run several tasks in one process group (spawning is the expensive part on a small machine)."""
    results: dict[str, Any] = {}
    for name, args in tasks:
        results[name if not args else f"{name}:{':'.join(map(str, args))}"] = globals()[name](rank, world, *args)
    return results


def inplace_training(rank: int, world: int) -> dict[str, float]:
    """The trainer's path: optimizer built before an in-place shard; gathered state resumes exactly."""
    from tglc_zoo.distributed import gather_training_state, localize_optimizer_state, scatter_training_state

    def sgd(params: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=LR, momentum=0.9, weight_decay=5e-4)

    model = build("wrn16_2", "gc2l", world, torch.float64)
    ref = copy.deepcopy(model)
    opt, opt_ref = sgd(model.parameters()), sgd(ref.parameters())  # before sharding, as the trainer does
    shard = group_parallel(model, inplace=True)
    assert shard.module is model
    ref.train()
    shard.train()

    def step(m: torch.nn.Module, o: torch.optim.Optimizer, i: int) -> None:
        x, y = _data("wrn16_2", torch.float64, i)
        o.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        o.step()

    for i in range(2):
        step(ref, opt_ref, i)
        step(shard, opt, i)
    model_state, opt_state = gather_training_state(shard, opt)
    ref_opt_state = opt_ref.state_dict()
    out = dict(model=max(_maxdiff(model_state[k], v) for k, v in ref.state_dict().items()),
               momentum=max(_maxdiff(opt_state["state"][i]["momentum_buffer"], s["momentum_buffer"])
                            for i, s in ref_opt_state["state"].items()))
    # resume on a fresh shard from the gathered (single-process layout) state, then one more step each
    fresh_model = build("wrn16_2", "gc2l", world, torch.float64)
    fresh_opt = sgd(fresh_model.parameters())
    fresh = group_parallel(fresh_model, inplace=True).train()
    scatter_training_state(fresh, fresh_opt, model_state, opt_state)
    step(ref, opt_ref, 2)
    step(fresh, fresh_opt, 2)
    full = fresh.full_state_dict()
    out["resumed"] = max(_maxdiff(full[k], v) for k, v in ref.state_dict().items())
    # the trainer's resume order: full state into the full model and its optimizer, then shard in place
    model_state, opt_state = gather_training_state(fresh, fresh_opt)
    late_model = build("wrn16_2", "gc2l", world, torch.float64)
    late_opt = sgd(late_model.parameters())
    late_model.load_state_dict(model_state)
    late_opt.load_state_dict(opt_state)
    late = group_parallel(late_model, inplace=True).train()
    out["localized"] = localize_optimizer_state(late, late_opt)
    step(ref, opt_ref, 3)
    step(late, late_opt, 3)
    full = late.full_state_dict()
    out["resumed_late"] = max(_maxdiff(full[k], v) for k, v in ref.state_dict().items())
    return out
