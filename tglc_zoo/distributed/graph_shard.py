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

import torch
import torch.distributed as dist
import torch.fx as fx
from torch import nn

from ..layers.shard_rules import local_conv
from . import ops
from .collectives import CommStats, GroupComm
from .placement import LeafPlan, PlacedGraph, where
from .shard import AttrRef, GatherChannels, SliceChannels, SyncedDropout, SyncedDropPath, local_per_channel

__all__ = ["local_modules", "shard_graph", "needs_seed"]


def needs_seed(leaves: dict[str, LeafPlan], placements: dict[str, PlacedGraph]) -> bool:
    """Whether any synchronised random op runs (then the ranks agree on a seed first: a collective)."""
    return any(p.kind in ("synced_dropout", "synced_drop_path") for p in leaves.values()) or \
        any(p.rewrites for p in placements.values())


def local_modules(model: nn.Module, leaves: dict[str, LeafPlan], rank: int, world: int,
                  group: dist.ProcessGroup | None, stats: CommStats, seed: int, reuse: bool) -> dict[str, nn.Module]:
    """Rank ``rank``'s module for every split (or synchronised) module of ``model``, by name.

    A conv-type layer is split by its spec's rule; parameters shared by several modules become one local
    parameter (``memo``), so tied weights stay tied.
    """
    new: dict[str, nn.Module] = {}
    memo: dict[int, nn.Parameter] = {}
    comm = GroupComm(group, stats)
    for i, (name, plan) in enumerate(sorted(leaves.items())):
        mod = model.get_submodule(name)
        if plan.kind == "layer":
            new[name] = ops.shard_rule(mod).local(mod, rank, world, comm, name, reuse, memo)
        elif plan.kind == "local_conv":
            assert isinstance(mod, nn.Conv2d)
            new[name] = local_conv(mod, rank, world, reuse=reuse, memo=memo)
        elif plan.kind == "split_out":
            assert isinstance(mod, nn.Conv2d)
            new[name] = local_conv(mod, rank, world, in_channels=mod.in_channels, groups=1, reuse=reuse, memo=memo)
        elif plan.kind == "per_channel":
            new[name] = local_per_channel(mod, rank, world, plan.channels, reuse=reuse, memo=memo)
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


def global_size(value: Any, kind: str, world: int, dim: Any = None, ndim: int = 4) -> Any:
    """A size read from a split tensor, made the single process's: ``x.size(1)``, ``x.shape``, ``x.numel()``."""
    if kind == "numel":
        return value * world
    if isinstance(value, int):  # x.size(d)
        return value * world if int(dim) % ndim == 1 else value
    return torch.Size((value[0], value[1] * world, *value[2:]))


def local_size(value: Any, world: int) -> Any:
    """The channel size of a reshape of a split tensor, as this rank gives it (``-1`` stays inferred)."""
    if isinstance(value, int):
        return value if value == -1 else value // world
    return torch.Size((value[0], value[1] // world, *value[2:]))  # a whole shape given as one value


def _size_read(node: fx.Node) -> tuple[str, Any, int]:
    """``(kind, dim, ndim)`` of a size read that :attr:`PlacedGraph.globalize` lists."""
    src = node.args[0]
    val = src.meta.get("val") if isinstance(src, fx.Node) else None
    ndim = val.dim() if isinstance(val, torch.Tensor) else 4
    if node.target in ("numel", "nelement"):
        return "numel", None, ndim
    if node.target == "size":
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return ("size", dim, ndim) if dim is not None else ("shape", None, ndim)
    return "shape", None, ndim


def _attr_owner(model: nn.Module, target: str) -> tuple[nn.Module, str]:
    parent, _, attr = target.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


def shard_graph(placement: PlacedGraph, model: nn.Module, group: dist.ProcessGroup | None, stats: CommStats,
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
        elif node in placement.localize:
            new = _localized(graph, node, convert, placement.world)
        else:
            new = graph.node_copy(node, convert)
        if node in placement.globalize:
            kind, dim, ndim = _size_read(node)
            new = graph.call_function(global_size, (new, kind, placement.world, dim, ndim))
        env[node] = new
    graph.lint()
    return graph


def _localized(graph: fx.Graph, node: fx.Node, convert: Any, world: int) -> fx.Node:
    """A reshape of a split tensor with the channel size (position 1 of the sizes) divided by the world size."""
    args = list(fx.node.map_arg(node.args, convert))
    kwargs = dict(fx.node.map_arg(node.kwargs, convert))

    def local(value: Any) -> Any:
        return local_size(value, world) if isinstance(value, int) else \
            graph.call_function(local_size, (value, world))

    if len(args) > 2:                                    # x.view(b, c, ...)
        args[2] = local(args[2])
    elif len(args) == 2 and isinstance(args[1], (tuple, list)):  # x.view((b, c, ...)), torch.reshape(x, (...))
        sizes = list(args[1])
        if len(sizes) > 1:
            sizes[1] = local(sizes[1])
        args[1] = type(args[1])(sizes)
    elif len(args) == 2:                                 # x.view(y.shape): one size value
        args[1] = local(args[1])
    elif "shape" in kwargs:
        kwargs["shape"] = local(kwargs["shape"])
    return graph.create_node(node.op, node.target, tuple(args), kwargs)


def graph_module(model: nn.Module, ops: nn.ModuleDict, graph: fx.Graph) -> fx.GraphModule:
    """The runnable graph: its leaves are ``model``'s (and ``ops``') module objects themselves."""
    holder = nn.Module()
    holder.module = model
    holder.gp = ops
    return fx.GraphModule(holder, graph, class_name="GroupParallelGraph")
