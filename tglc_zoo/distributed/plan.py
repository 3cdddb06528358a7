"""Which tensors of a model are split by channel group and which are replicated (no process group needed).

Every sharded tensor of the supported families is split along dim 0 into N equal slices, rank k
taking slice k: a grouped conv's weight ``(m, n/N, d, d)`` (its output channels), GC-2L's ``R0``
weight ``(N, n/N, d, d)`` (its row k), ``R̄0ᵀ`` ``(m, N, 1, 1)`` (``S_k``, its m/N rows), a depthwise
weight ``(C, 1, d, d)``, and BatchNorm's per-channel tensors. The stem is split by output channel
too (by default): its input is the replicated image and conv, BatchNorm, ReLU and max-pool all act
per output channel, so rank k computes exactly its channels of the stem's output and the body entry
needs no communication. Replicated tensors — the classifier, BatchNorm's ``num_batches_tracked``,
and the stem when ``shard_stem=False`` — are identical on every rank.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..errors import GroupParallelError
from ..layers import CONV_SPECS, SHARDABLE_CONV_TYPES, FLGCConv2d, ShuffleGroupConv2d, TwoLevelGroupConv2d
from ..models._base import ClassifierModel

__all__ = ["ShardPlan", "GroupParallelError", "SUPPORTED_CONV_TYPES", "check_supported", "check_world_size",
           "make_plan", "replicated_prefixes", "walk"]

SUPPORTED_CONV_TYPES: tuple[str, ...] = SHARDABLE_CONV_TYPES
PLAN_FORMAT = "tglc_zoo.group_parallel/1"



def check_supported(model: nn.Module) -> tuple[str, int]:
    """Return ``(conv_type, groups)`` of a model group parallelism can split; raise otherwise."""
    if not isinstance(model, ClassifierModel):
        raise GroupParallelError(f"group parallelism needs a tglc_zoo WideResNet or MobileNetV2, got "
                                 f"{type(model).__name__}")
    conv_type, groups = getattr(model, "conv_type", None), getattr(model, "groups", None)
    if conv_type not in SUPPORTED_CONV_TYPES:
        spec = CONV_SPECS.get(str(conv_type))
        why = spec.why_not_shardable if spec is not None else "unknown type"
        raise GroupParallelError(
            f"conv_type {conv_type!r} cannot run group-parallel ({why}; it would need an all-to-all of the "
            f"activations per layer, not an all-gather of N channels); valid choices: {list(SUPPORTED_CONV_TYPES)}")
    if not isinstance(groups, int) or groups < 1:
        raise GroupParallelError(f"model has an invalid groups attribute {groups!r}")
    return conv_type, groups


def replicated_prefixes(model: ClassifierModel, shard_stem: bool = True) -> tuple[str, ...]:
    """Submodules every rank holds in full: the classifier, and the stem unless it is split."""
    classifier = model.pretrained_cfg.get("classifier", model._classifier_name)
    return (classifier,) if shard_stem else ("stem", classifier)


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _leaf_keys(module: nn.Module) -> list[str]:
    return [n for n, _ in module.named_parameters(recurse=False)] + \
           [n for n, b in module.named_buffers(recurse=False) if b is not None]


Kind = Literal["two_level", "group_conv", "stem_conv", "batchnorm", "replicated", "stateless"]


def walk(model: nn.Module, world_size: int, shard_stem: bool = True) -> Iterator[tuple[str, nn.Module, Kind]]:
    """Every submodule with how it is distributed; raises for anything that cannot be split by channel group.

    Kinds: ``two_level`` (GC-2L: its conv/restrict/coarse are not visited separately), ``group_conv``
    (groups a multiple of N: GC and depthwise convs), ``stem_conv`` (a dense conv on the replicated
    input image, split by output channel), ``batchnorm``, ``replicated`` (classifier, replicated stem).
    """
    assert isinstance(model, ClassifierModel)
    keep = replicated_prefixes(model, shard_stem)
    skip: list[str] = []
    for name, mod in model.named_modules():
        if _under(name, skip):
            continue
        if _under(name, keep):
            yield name, mod, "replicated"
        elif isinstance(mod, (ShuffleGroupConv2d, FLGCConv2d)):
            raise GroupParallelError(f"layer {name!r} is a {type(mod).__name__}; valid for group parallelism: "
                                     "GroupConv2d, TwoLevelGroupConv2d")
        elif isinstance(mod, TwoLevelGroupConv2d):
            if mod.groups != world_size:
                raise GroupParallelError(f"layer {name!r} has groups={mod.groups}, but the world size is {world_size}")
            skip.append(name)
            yield name, mod, "two_level"
        elif isinstance(mod, nn.Conv2d):
            if _under(name, ("stem",)) and mod.groups == 1 and mod.out_channels % world_size == 0:
                yield name, mod, "stem_conv"
            elif mod.groups % world_size == 0 and (mod.groups > 1 or world_size == 1):
                yield name, mod, "group_conv"
            else:
                raise GroupParallelError(
                    f"layer {name!r} ({mod.in_channels}->{mod.out_channels}, groups={mod.groups}) cannot be split "
                    f"over {world_size} processes by channel group: its groups must be a multiple of {world_size}")
        elif isinstance(mod, nn.BatchNorm2d):
            if mod.num_features % world_size:
                raise GroupParallelError(f"BatchNorm {name!r} has {mod.num_features} channels, not divisible by "
                                         f"{world_size}")
            yield name, mod, "batchnorm"
        elif _leaf_keys(mod):
            raise GroupParallelError(f"do not know how to split {type(mod).__name__} {name!r} by channel group")
        else:
            yield name, mod, "stateless"


def check_world_size(model: nn.Module, world_size: int) -> int:
    _, groups = check_supported(model)
    if world_size != groups:
        raise GroupParallelError(f"world size {world_size} differs from the model's groups={groups}: group "
                                 f"parallelism runs group k on process k; launch exactly {groups} processes "
                                 f"(torchrun --nproc_per_node {groups})")
    return world_size


def make_plan(model: nn.Module, world_size: int | None = None, shard_stem: bool = True) -> ShardPlan:
    """Classify every state-dict key of ``model`` as sharded (dim 0) or replicated, for N = ``model.groups``."""
    _, groups = check_supported(model)
    world_size = check_world_size(model, groups if world_size is None else world_size)
    sharded: list[str] = []
    replicated: list[str] = []
    for name, mod, kind in walk(model, world_size, shard_stem):
        prefix = f"{name}." if name else ""
        if kind == "two_level":
            sharded += [f"{prefix}{child}.{k}" for child in ("conv", "restrict", "coarse")
                        for k in _leaf_keys(mod.get_submodule(child))]
            continue
        for key in _leaf_keys(mod):
            split = kind != "replicated" and key != "num_batches_tracked"
            (sharded if split else replicated).append(prefix + key)
    order = tuple(model.state_dict())
    index = {k: i for i, k in enumerate(order)}
    return ShardPlan(world_size, tuple(sorted(sharded, key=index.__getitem__)),
                     tuple(sorted(replicated, key=index.__getitem__)), order)


@dataclass(frozen=True)
class ShardPlan:
    """The split of one model's state dict over ``world_size`` ranks (sharded keys along dim 0).

    ``order`` is the single-process state dict's key order (merged state dicts follow it).
    """

    world_size: int
    sharded: tuple[str, ...]
    replicated: tuple[str, ...]
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        both = set(self.sharded) & set(self.replicated)
        if both:
            raise GroupParallelError(f"keys both sharded and replicated: {sorted(both)[:5]}")
        if self.order and set(self.order) != set(self.sharded) | set(self.replicated):
            raise GroupParallelError("shard plan order does not list exactly its sharded and replicated keys")

    @property
    def keys(self) -> tuple[str, ...]:
        return self.order or self.sharded + self.replicated

    def local_slice(self, tensor: torch.Tensor, rank: int, key: str = "") -> torch.Tensor:
        n = tensor.shape[0]
        if n % self.world_size:
            raise GroupParallelError(f"tensor {key!r} has {n} rows, not divisible by world size {self.world_size}")
        s = n // self.world_size
        return tensor[rank * s:(rank + 1) * s]

    def _check_keys(self, state_dict: Mapping[str, Any], what: str) -> None:
        got, want = set(state_dict), set(self.keys)
        if got != want:
            raise GroupParallelError(f"{what} does not match the model: missing {sorted(want - got)[:5]}, "
                                     f"unexpected {sorted(got - want)[:5]}")

    def split_rank(self, full: Mapping[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
        """Rank ``rank``'s state dict (cloned, contiguous) from a full single-process state dict."""
        if not 0 <= rank < self.world_size:
            raise GroupParallelError(f"rank {rank} out of range for world size {self.world_size}")
        self._check_keys(full, "state dict")
        sharded = set(self.sharded)
        return {k: (self.local_slice(v, rank, k) if k in sharded else v).clone().contiguous()
                for k, v in full.items()}

    def split(self, full: Mapping[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [self.split_rank(full, r) for r in range(self.world_size)]

    def merge(self, shards: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The full state dict from the N per-rank ones (replicated tensors must agree)."""
        if len(shards) != self.world_size:
            raise GroupParallelError(f"need {self.world_size} rank state dicts, got {len(shards)}")
        for r, sd in enumerate(shards):
            self._check_keys(sd, f"rank {r} state dict")
        sharded = set(self.sharded)
        out: dict[str, torch.Tensor] = {}
        for k in self.keys:
            if k in sharded:
                out[k] = torch.cat([sd[k] for sd in shards], dim=0)
            else:
                for r, sd in enumerate(shards[1:], 1):
                    if not torch.equal(sd[k], shards[0][k]):
                        raise GroupParallelError(f"replicated tensor {k!r} differs between rank 0 and rank {r}")
                out[k] = shards[0][k].clone()
        return out

    def to_json(self) -> str:
        return json.dumps({"format": PLAN_FORMAT, "world_size": self.world_size, "sharded": list(self.sharded),
                           "replicated": list(self.replicated), "order": list(self.keys)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ShardPlan:
        try:
            d = json.loads(text)
            if d.get("format") != PLAN_FORMAT:
                raise GroupParallelError(f"unknown shard plan format {d.get('format')!r}; expected {PLAN_FORMAT!r}")
            return cls(int(d["world_size"]), tuple(d["sharded"]), tuple(d["replicated"]), tuple(d.get("order", ())))
        except (ValueError, KeyError, TypeError) as e:
            if isinstance(e, GroupParallelError):
                raise
            raise GroupParallelError(f"invalid shard plan: {e}") from e
