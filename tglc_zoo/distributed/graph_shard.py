"""Building one rank's shard from the analysis: its modules, and the graphs it runs.

:func:`local_modules` makes rank k's version of every split module (:mod:`.shard`). :func:`shard_graph`
rewrites a placed graph for that rank: calls go to the sharded model (under ``module.``); every edge
whose placement changes gets a :class:`~.shard.GatherChannels` (``S → R``) or
:class:`~.shard.SliceChannels` (``R → S``); parameters read in the forward (``get_attr``) are read through
:class:`~.shard.AttrRef`; functional dropout becomes a :class:`~.shard.SyncedDropout`. The result runs
as an ``fx.GraphModule`` whose leaves are the very modules of the sharded model.
"""
from __future__ import annotations

from typing import Any

import torch.distributed as dist
import torch.fx as fx
from torch import nn

from ..layers import TwoLevelGroupConv2d
from .collectives import CommStats
from .placement import LeafPlan, Placement, where
from .shard import (
    AttrRef,
    GatherChannels,
    LocalTwoLevelConv2d,
    SliceChannels,
    SyncedDropout,
    SyncedDropPath,
    local_conv,
    local_per_channel,
)

__all__ = ["local_modules", "shard_graph", "needs_seed"]


def needs_seed(leaves: dict[str, LeafPlan], placements: dict[str, Placement]) -> bool:
    """Whether any synchronised random op runs (then the ranks agree on a seed first: a collective)."""
    return any(p.kind in ("synced_dropout", "synced_drop_path") for p in leaves.values()) or \
        any(p.rewrites for p in placements.values())


def local_modules(model: nn.Module, leaves: dict[str, LeafPlan], rank: int, world: int,
                  group: dist.ProcessGroup | None, stats: CommStats, seed: int, reuse: bool) -> dict[str, nn.Module]:
    """Rank ``rank``'s module for every split (or synchronised) module of ``model``, by name."""
    new: dict[str, nn.Module] = {}
    for i, (name, plan) in enumerate(sorted(leaves.items())):
        mod = model.get_submodule(name)
        if plan.kind == "two_level":
            assert isinstance(mod, TwoLevelGroupConv2d)
            new[name] = LocalTwoLevelConv2d(mod, rank, world, group, stats, name, reuse=reuse)
        elif plan.kind == "local_conv":
            assert isinstance(mod, nn.Conv2d)
            new[name] = local_conv(mod, rank, world, reuse=reuse)
        elif plan.kind == "split_out":
            assert isinstance(mod, nn.Conv2d)
            new[name] = local_conv(mod, rank, world, in_channels=mod.in_channels, groups=1, reuse=reuse)
        elif plan.kind == "per_channel":
            new[name] = local_per_channel(mod, rank, world, plan.channels, reuse=reuse)
        elif plan.kind == "synced_dropout":
            new[name] = SyncedDropout(float(getattr(mod, "p", 0.0)), seed + i)
        elif plan.kind == "synced_drop_path":
            p = float(getattr(mod, "drop_prob", getattr(mod, "p", 0.0)))
            new[name] = SyncedDropPath(p, seed + i, str(getattr(mod, "mode", "row")),
                                       bool(getattr(mod, "scale_by_keep", True)))
        else:
            continue
        new[name].train(mod.training)
    return new


def _attr_owner(model: nn.Module, target: str) -> tuple[nn.Module, str]:
    parent, _, attr = target.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


def shard_graph(placement: Placement, model: nn.Module, group: dist.ProcessGroup | None, stats: CommStats,
                ops: dict[str, nn.Module], seed: int) -> fx.Graph:
    """Rank-local graph of ``placement``: module calls under ``module.``, helper modules added to ``ops``
    (called under ``gp.``) — see the module docstring."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    moved: dict[tuple[fx.Node, str], fx.Node] = {}

    def add_op(prefix: str, module: nn.Module) -> str:
        name = f"{prefix}_{len(ops)}"
        ops[name] = module
        return f"gp.{name}"

    def arg_for(user: fx.Node) -> Any:
        def convert(inp: fx.Node) -> fx.Node:
            kind = placement.conversion(user, inp)
            if kind is None:
                return env[inp]
            key = (inp, kind if kind == "slice" else f"{kind}:{placement.gather_kind(user)}")
            if key not in moved:
                at = f"{where(inp)} -> {where(user)}"
                module: nn.Module = (SliceChannels(group, stats, at) if kind == "slice" else
                                     GatherChannels(group, stats, at, f"{placement.gather_kind(user)}_allgather"))
                moved[key] = graph.call_module(add_op(kind, module), (env[inp],))
            return moved[key]
        return convert

    for node in placement.graph.nodes:
        convert = arg_for(node)
        if node.op == "call_module":
            new = graph.call_module(f"module.{node.target}", fx.node.map_arg(node.args, convert),
                                    fx.node.map_arg(node.kwargs, convert))
        elif node.op == "get_attr":
            owner, attr = _attr_owner(model, str(node.target))
            new = graph.call_module(add_op("attr", AttrRef(owner, attr)), ())
        elif node in placement.rewrites:
            x = convert(node.args[0]) if node.args else convert(node.kwargs["input"])
            new = graph.call_module(add_op("dropout", SyncedDropout(placement.rewrites[node], seed + 1000 + len(ops))),
                                    (x,))
        elif node.op == "output":
            graph.output(fx.node.map_arg(node.args[0], convert))
            continue
        else:
            new = graph.node_copy(node, convert)
        env[node] = new
    graph.lint()
    return graph


def graph_module(model: nn.Module, ops: nn.ModuleDict, graph: fx.Graph) -> fx.GraphModule:
    """The runnable graph: its leaves are ``model``'s (and ``ops``') module objects themselves."""
    holder = nn.Module()
    holder.module = model
    holder.gp = ops
    return fx.GraphModule(holder, graph, class_name="GroupParallelGraph")
