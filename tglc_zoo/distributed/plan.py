"""Which tensors of a model are split by channel group and which are replicated (no process group needed).

The model is traced (:mod:`.trace`) and every node placed (:mod:`.placement`); each module then gets a
kind, and its tensors follow:

* ``layer`` (a conv type with a shard rule, :mod:`tglc_zoo.layers.shard_rules`: GC, GC-2L): every tensor
  split along dim 0 (GC-2L: ``Agp`` ``(m, n/N, d, d)``, ``R0`` ``(N, n/N, d, d)`` — row k — and ``R̄0ᵀ``
  ``(m, N, 1, 1)`` — ``S_k``, its m/N rows);
* ``local_conv`` (depthwise and grouped ``nn.Conv2d`` whose groups are a multiple of N) and ``split_out`` (a
  dense conv on the replicated image — the stem — computing this rank's output channels): weight and
  bias split along dim 0;
* ``per_channel`` (BatchNorm and friends): every tensor with one row per channel split, the rest
  (``num_batches_tracked``) replicated;
* everything else — the classifier, layers that mix pooled features, unused modules — replicated.

Every sharded tensor is split into N equal slices, rank k taking slice k. A parameter shared by several
modules (tied weights) is split once and stays shared — or, when one of its owners is split and another
replicated, refused.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import GroupParallelError
from ..layers import CONV_SPECS, SHARDABLE_CONV_TYPES, spec_of_layer
from ..models._base import ClassifierModel
from . import ops
from .placement import LeafPlan, PlacedGraph, place_graph
from .trace import TracedModel, trace_model

__all__ = ["ShardPlan", "GroupParallelError", "SUPPORTED_CONV_TYPES", "Analysis", "analyse", "check_supported",
           "check_world_size", "make_plan", "model_groups"]

SUPPORTED_CONV_TYPES: tuple[str, ...] = SHARDABLE_CONV_TYPES
PLAN_FORMAT = "tglc_zoo.group_parallel/1"


def _refuse_type(conv_type: str) -> GroupParallelError:
    spec = CONV_SPECS.get(str(conv_type))
    why = spec.why_not_shardable if spec is not None else "unknown type"
    return GroupParallelError(
        f"conv_type {conv_type!r} cannot run group-parallel ({why}; it would need an all-to-all of the "
        f"activations per layer, not an all-gather of N channels); valid choices: {list(SUPPORTED_CONV_TYPES)}")


def check_supported(model: nn.Module) -> tuple[str, int]:
    """Return ``(conv_type, groups)`` of a model group parallelism can split; raise otherwise.

    A tglc_zoo model says it in its ``conv_type`` / ``groups``; a model converted by
    :func:`tglc_zoo.convert.to_grouped` in its grouping spec; any other model is read from its layers
    (every GC-2L layer must have the same N; GC layers a multiple of it).
    """
    if isinstance(model, ClassifierModel) and hasattr(model, "conv_type"):
        conv_type, groups = getattr(model, "conv_type", None), getattr(model, "groups", None)
        if conv_type not in SUPPORTED_CONV_TYPES:
            raise _refuse_type(str(conv_type))
        if not isinstance(groups, int) or groups < 1:
            raise GroupParallelError(f"model has an invalid groups attribute {groups!r}")
        return str(conv_type), groups
    spec = getattr(model, "grouping", None)
    if spec is not None and getattr(spec, "conv_type", None) in SUPPORTED_CONV_TYPES:
        return str(spec.conv_type), int(spec.groups)
    required: dict[int, str] = {}
    free: dict[int, str] = {}
    for m in model.modules():
        layer_spec = spec_of_layer(m)
        if layer_spec is None or not layer_spec.grouped:
            continue
        if layer_spec.shard_rule is None:
            raise _refuse_type(layer_spec.name)
        n = layer_spec.shard_rule.required_world(m)
        if n is not None:
            required[n] = layer_spec.name
        else:
            free[int(getattr(m, "groups", 1))] = layer_spec.name
    if len(required) > 1:
        raise GroupParallelError(f"{type(model).__name__} has layers that need different numbers of processes "
                                 f"{sorted(required)} ({sorted(set(required.values()))}); group parallelism runs one "
                                 "channel group per process")
    if required:
        n, name = next(iter(required.items()))
        return name, n
    if free:
        n = min(free)
        return free[n], n
    raise GroupParallelError(f"group parallelism splits GC / GC-2L layers by channel group, and "
                             f"{type(model).__name__} has none; convert it first (tglc_zoo.convert.to_grouped or "
                             "create_grouped)")


def model_groups(model: nn.Module) -> int:
    """N, the number of channel groups (= processes) of a model group parallelism can split."""
    return check_supported(model)[1]


def check_world_size(model: nn.Module, world_size: int) -> int:
    _, groups = check_supported(model)
    if world_size != groups:
        raise GroupParallelError(f"world size {world_size} differs from the model's groups={groups}: group "
                                 f"parallelism runs group k on process k; launch exactly {groups} processes "
                                 f"(torchrun --nproc_per_node {groups})")
    return world_size


@dataclass
class Analysis:
    """A model's traced graphs placed over ``world`` ranks, and each module's kind (:class:`LeafPlan`)."""

    traced: TracedModel
    placements: dict[str, PlacedGraph]
    leaves: dict[str, LeafPlan]
    world: int
    shard_stem: bool
    traced_model: nn.Module | None = None

    def communication(self, mode: str = "train") -> list[dict[str, Any]]:
        """Every collective one forward (and its backward) runs, at the traced input shape: what moves, where."""
        p = self.placements[mode]
        out: list[dict[str, Any]] = []
        modules = dict(self.traced_model.named_modules()) if self.traced_model is not None else {}
        for node in p.graph.nodes:
            if node.op == "call_module" and self.leaves.get(str(node.target), LeafPlan("")).kind == "layer":
                layer = modules[str(node.target)]
                for c in ops.shard_rule(layer).communication(layer, tuple(node.meta["val"].shape), self.world):
                    out.append(dict(where=str(node.target), op=c.op, per_rank=c.per_rank, backward=c.backward))
        for user, inp, conv in p.edges():
            val = inp.meta.get("val")
            shape = tuple(val.shape) if isinstance(val, torch.Tensor) else ()
            local = (shape[0], shape[1] // self.world, *shape[2:]) if len(shape) >= 2 else shape
            if conv == "gather":
                out.append(dict(where=f"{inp.name} -> {user.name}", op=f"{p.gather_kind(user)}_allgather",
                                per_rank=local, backward="none (keep the local slice)"))
            else:
                grad = p.state[inp].grad
                out.append(dict(where=f"{inp.name} -> {user.name}", op="slice", per_rank=local,
                                backward="all-gather of the gradient slices" if grad else "none (no gradient)"))
        return out


def _merge_leaves(placements: Mapping[str, PlacedGraph]) -> dict[str, LeafPlan]:
    leaves: dict[str, LeafPlan] = {}
    for mode, p in placements.items():
        for name, plan in p.leaves.items():
            if name in leaves and leaves[name] != plan:
                raise GroupParallelError(f"module {name!r} would be split differently in training and evaluation "
                                         f"mode ({leaves[name].kind} vs {plan.kind} in {mode} mode)")
            leaves[name] = plan
    return leaves


def analyse(model: nn.Module, world_size: int | None = None, shard_stem: bool = True,
            example_input: Sequence[int] | torch.Tensor | None = None) -> Analysis:
    """Trace and place ``model`` for ``world_size`` (default: its groups) ranks; raise where groups would mix."""
    _, groups = check_supported(model)
    world = check_world_size(model, groups if world_size is None else world_size)
    if getattr(model, "grad_checkpointing", False):
        raise GroupParallelError("gradient checkpointing is not supported with group parallelism; call "
                                 "model.set_grad_checkpointing(False) first")
    traced = trace_model(model, example_input)
    placements = {mode: place_graph(model, g, world, shard_stem) for mode, g in traced.graphs.items()}
    leaves = _merge_leaves(placements)
    check_ties(model, leaves)
    return Analysis(traced, placements, leaves, world, shard_stem, model)


_SPLIT_KINDS = ("layer", "local_conv", "split_out")


def _aliases(model: nn.Module) -> dict[str, str]:
    """Every name of every module -> the name ``torch.fx`` calls it by (the first in ``named_modules``)."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        out[name] = first.setdefault(id(m), name)
    return out


def _owner(name: str, leaves: Mapping[str, LeafPlan], aliases: Mapping[str, str] | None = None
           ) -> LeafPlan | None:
    if aliases is not None:
        name = aliases.get(name, name)
    while True:
        if name in leaves:
            return leaves[name]
        if not name:
            return None
        name = name.rpartition(".")[0]


def _splits(owner: LeafPlan | None, t: torch.Tensor) -> bool:
    kind = owner.kind if owner is not None else "replicated"
    return (kind in _SPLIT_KINDS and t.dim() > 0) or \
        (kind == "per_channel" and owner is not None and t.dim() > 0 and t.shape[0] == owner.channels)


def check_ties(model: nn.Module, leaves: Mapping[str, LeafPlan]) -> None:
    """A parameter shared by several modules is split by all of them or by none; anything else is refused."""
    aliases = _aliases(model)
    owners: dict[int, list[tuple[str, bool]]] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        for key, p in mod.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((f"{name}.{key}" if name else key,
                                                 _splits(_owner(name, leaves, aliases), p)))
    for uses in owners.values():
        if len({split for _, split in uses}) > 1:
            split = [k for k, s in uses if s]
            whole = [k for k, s in uses if not s]
            raise GroupParallelError(f"one parameter is tied between {split[0]!r}, which group parallelism splits by "
                                     f"channel group, and {whole[0]!r}, which runs replicated: no rank could hold "
                                     "both; untie them (a copy for each) or make both layers split")


def plan_from_analysis(model: nn.Module, analysis: Analysis) -> ShardPlan:
    sharded: list[str] = []
    replicated: list[str] = []
    aliases = _aliases(model)
    for name, mod in model.named_modules(remove_duplicate=False):
        owner = _owner(name, analysis.leaves, aliases)
        prefix = f"{name}." if name else ""
        tensors = [*mod.named_parameters(recurse=False), *((n, b) for n, b in mod.named_buffers(recurse=False)
                                                           if b is not None)]
        for key, t in tensors:
            (sharded if _splits(owner, t) else replicated).append(prefix + key)
    order = tuple(model.state_dict())
    index = {k: i for i, k in enumerate(order)}
    keep = set(order)
    return ShardPlan(analysis.world,
                     tuple(sorted({k for k in sharded if k in keep}, key=index.__getitem__)),
                     tuple(sorted({k for k in replicated if k in keep}, key=index.__getitem__)), order)


def make_plan(model: nn.Module, world_size: int | None = None, shard_stem: bool = True,
              example_input: Sequence[int] | torch.Tensor | None = None) -> ShardPlan:
    """Classify every state-dict key of ``model`` as sharded (dim 0) or replicated, for N = its groups."""
    return plan_from_analysis(model, analyse(model, world_size, shard_stem, example_input))


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
        if isinstance(self.world_size, bool) or not isinstance(self.world_size, int) or self.world_size < 1:
            raise GroupParallelError(f"shard plan world_size must be a positive integer, got {self.world_size!r}")
        for field_name in ("sharded", "replicated", "order"):
            bad = [k for k in getattr(self, field_name) if not isinstance(k, str)]
            if bad:
                raise GroupParallelError(f"shard plan {field_name} must list state-dict keys (strings), "
                                         f"got {bad[:3]!r}")
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
        except (ValueError, RecursionError) as e:
            raise GroupParallelError(f"invalid shard plan: not JSON ({type(e).__name__}: {str(e)[:200]})") from None
        if not isinstance(d, dict):
            raise GroupParallelError(f"invalid shard plan: expected a JSON object with keys 'format', 'world_size', "
                                     f"'sharded', 'replicated', got a {type(d).__name__}")
        if d.get("format") != PLAN_FORMAT:
            raise GroupParallelError(f"unknown shard plan format {d.get('format')!r}; expected {PLAN_FORMAT!r}")
        missing = [k for k in ("world_size", "sharded", "replicated") if k not in d]
        if missing:
            raise GroupParallelError(f"invalid shard plan: missing {missing}")
        lists = {k: d.get(k, []) for k in ("sharded", "replicated", "order")}
        bad = [k for k, v in lists.items() if not isinstance(v, list)]
        if bad:
            raise GroupParallelError(f"invalid shard plan: {bad} must be lists of state-dict keys")
        return cls(d["world_size"], tuple(lists["sharded"]), tuple(lists["replicated"]), tuple(lists["order"]))
