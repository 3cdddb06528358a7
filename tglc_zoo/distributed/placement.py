"""Where every tensor of a traced model lives under group parallelism, and the proof that groups stay local.

Each node of the graph gets a *placement* (:class:`Place`, as ``torch.distributed.tensor`` would say):

* ``R`` — replicated: every rank holds the whole tensor, identical (the image, the classifier's output);
* ``S`` — split by channel group along dim 1: rank k holds channels ``[k·C/N, (k+1)·C/N)``;
* ``C`` — not a tensor (sizes, flags).

A layer of a shardable conv type is placed by its rule (:mod:`tglc_zoo.layers.shard_rules`, from its spec):
split in, split out, its tensors split by output channel.

Sizes read from a split tensor (``x.size(1)``, ``x.shape``, ``x.numel()``) are rewritten to the global value
the single process computes, so ``x / x.shape[1] ** 0.5``, ``y.view(b, c, 1, 1)`` on the replicated output of
a gate, or ``torch.zeros(b, x.size(1), 1, 1)`` mean what they mean in one process; a reshape of a split tensor
then gets its channel size divided by N back (:attr:`PlacedGraph.globalize`, :attr:`PlacedGraph.localize`).

Forward pass, node by node (:class:`Placer`): the GC-2L / GC layers take ``S`` and give ``S``; an operation
that treats channels independently (:mod:`.ops`) keeps ``S``; an operation that mixes channels is either
computed on ``R`` inputs (replicated: every rank computes the same) or, when its ``S`` input is *pooled*
features (after a global pool, or flattened for the classifier), preceded by an all-gather of them
(``B×C/N`` per rank: the head, squeeze-excitation); on any other ``S`` activation it is refused with an
error naming the module and the op. Then a backward pass splits as early as possible: a replicated
channel-local node whose every consumer wants ``S`` is computed split instead, and a dense convolution on
the image (the stem) computes only its rank's output channels — so the stem needs no communication.

Conversions on edges: ``R → S`` is a local slice (backward: all-gather of the slices' gradients, so the
replicated producer gets the whole gradient); ``S → R`` an all-gather (backward: keep the local slice).
"""
from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import GroupParallelError
from ..layers import spec_of_layer
from . import ops

__all__ = ["Place", "R", "S", "C", "NodeState", "PlacedGraph", "LeafPlan", "place_graph", "where"]


class Place(Enum):
    """Where a value of the traced graph lives over the N ranks."""

    REPLICATED = "R"   # every rank holds the whole tensor, identical
    SPLIT = "S"        # split by channel group along dim 1: rank k holds channels [k·C/N, (k+1)·C/N)
    VALUE = "C"        # not a tensor (sizes, flags)


R, S, C = Place.REPLICATED, Place.SPLIT, Place.VALUE
_CONCATENATE = (torch.cat, torch.concat, torch.concatenate)
LOCAL_KINDS = ("layer", "local_conv", "split_out", "per_channel")
_FLIPPABLE_MODULES = ("elementwise", "spatial", "per_channel", "drop_path", "conv")


@dataclass
class NodeState:
    place: Place
    gatherable: bool = False   # pooled / flattened features: cheap to all-gather
    grad: bool = False         # depends on trainable parameters


@dataclass(frozen=True)
class LeafPlan:
    """How one module is distributed: ``kind`` and the full channel count it is split over (0: not split)."""

    kind: str
    channels: int = 0


@dataclass
class PlacedGraph:
    """One graph's placements, the placement each consumer needs of each input, and the leaves' kinds."""

    graph: fx.Graph
    world: int
    state: dict[fx.Node, NodeState] = field(default_factory=dict)
    needs: dict[tuple[fx.Node, fx.Node], Place] = field(default_factory=dict)
    leaves: dict[str, LeafPlan] = field(default_factory=dict)
    rewrites: dict[fx.Node, float] = field(default_factory=dict)   # functional dropout → synced, with its p
    globalize: set[fx.Node] = field(default_factory=set)     # size reads of split tensors: give the global size
    localize: set[fx.Node] = field(default_factory=set)      # reshapes of split tensors: channel size / N

    def conversion(self, user: fx.Node, inp: fx.Node) -> str | None:
        """``"slice"``, ``"gather"`` or ``None`` on the edge ``inp → user``."""
        have, need = self.state[inp].place, self.needs.get((user, inp))
        if have == C or need is None or have == need:
            return None
        return "slice" if have == R else "gather"

    def gather_kind(self, user: fx.Node) -> str:
        """``"head"`` when nothing after the gathered features returns to split activations, else ``"gate"``
        (features mixed inside the body and sliced back, as in squeeze-excitation)."""
        seen: set[fx.Node] = set()
        todo = [user]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for u in node.users:
                if self.conversion(u, node) == "slice":
                    return "gate"
                if self.state.get(u, NodeState(C)).place == R:
                    todo.append(u)
        return "head"

    def edges(self) -> Iterator[tuple[fx.Node, fx.Node, str]]:
        for (user, inp) in self.needs:
            conv = self.conversion(user, inp)
            if conv is not None:
                yield user, inp, conv


def where(node: fx.Node) -> str:
    """The module a node belongs to: ``'layer1.0.conv1' (Conv2d)``, or the model's own forward."""
    if node.op == "call_module":
        return repr(str(node.target))
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        name = getattr(cls, "__name__", str(cls).rsplit(".", 1)[-1].strip("'>"))
        return f"{path!r} ({name})" if path else f"the model's forward ({name}, at {node.name!r})"
    return f"the model's forward (at {node.name!r})"


def _val(node: Any) -> Any:
    return node.meta.get("val") if isinstance(node, fx.Node) else node


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    for a in node.all_input_nodes:
        if a not in out:
            out.append(a)
    return out


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    v = _val(node)
    if isinstance(v, torch.Tensor):
        return tuple(v.shape)
    if isinstance(v, (tuple, list)) and v and all(isinstance(t, torch.Tensor) for t in v):
        return tuple(v[0].shape)
    return None


def _is_tensor(node: fx.Node) -> bool:
    v = _val(node)
    return isinstance(v, torch.Tensor) or (isinstance(v, (tuple, list)) and bool(v)
                                           and all(isinstance(t, torch.Tensor) for t in v))


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _broadcasts(node: fx.Node) -> bool:
    """Element-wise with broadcasting: binary ops, and unary ones given tensor bounds (``clamp(x, lo_t)``)."""
    t = node.target
    return node.op != "call_module" and (t in ops.BINARY_FUNCS or t in ops.BINARY_METHODS
                                         or t in ops.ELEMENTWISE_FUNCS or t in ops.ELEMENTWISE_METHODS)


def _dims(value: Any, ndim: int) -> tuple[int, ...] | None:
    """Normalised dims of a ``dim`` argument (``None``: all dims)."""
    if value is None:
        return None
    values = value if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(v, int) for v in values):
        return ()  # dims computed at run time: treated as unknown (mixing)
    return tuple(sorted(v % ndim for v in values))


class Placer:
    """Places one graph (see the module docstring)."""

    def __init__(self, model: nn.Module, graph: fx.Graph, world: int, shard_stem: bool) -> None:
        self.model, self.world, self.shard_stem = model, world, shard_stem
        self.modules = dict(model.named_modules())
        self.p = PlacedGraph(graph, world)

    # -- helpers -------------------------------------------------------------------------------------
    def _set(self, node: fx.Node, place: Place, gatherable: bool = False) -> None:
        grad = any(self.p.state[a].grad for a in _tensor_inputs(node) if a in self.p.state)
        if node.op == "call_module":
            grad = grad or any(p.requires_grad for p in self.modules[str(node.target)].parameters())
        self.p.state[node] = NodeState(place, gatherable, grad)

    def _need(self, user: fx.Node, inp: fx.Node, place: Place) -> None:
        if self.p.state[inp].place != C:
            self.p.needs[(user, inp)] = place

    def _s_inputs(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in _tensor_inputs(node) if self.p.state[a].place == S]

    def _fail(self, node: fx.Node, op: str, why: str) -> GroupParallelError:
        shapes = [s for s in (_shape(a) for a in self._s_inputs(node)) if s is not None]
        shape = f" {tuple(shapes[0])}" if shapes else ""
        return GroupParallelError(
            f"group parallelism cannot split {where(node)}: {op} on a channel-split activation{shape} {why}. "
            f"Between the stem and the pooled features every op must keep the {self.world} channel groups "
            "local (BatchNorm, activations, residual adds, pooling, depthwise/grouped convs whose groups are a "
            "multiple of N, GC, GC-2L); exclude the layer from group parallelism by converting it, or use "
            "data parallelism for this model")

    def _mix(self, node: fx.Node, op: str, why: str) -> None:
        """A channel-mixing op: replicated compute after an all-gather of pooled inputs, or an error."""
        split = self._s_inputs(node)
        bad = [a for a in split if not self.p.state[a].gatherable]
        if bad:
            raise self._fail(node, op, why)
        for a in _tensor_inputs(node):
            self._need(node, a, R)
        self._set(node, R, gatherable=bool(split) or self._all_gatherable(node))

    def _all_gatherable(self, node: fx.Node) -> bool:
        ins = [a for a in _tensor_inputs(node) if self.p.state[a].place != C]
        return bool(ins) and all(self.p.state[a].gatherable for a in ins)

    def _split_needs(self, node: fx.Node) -> None:
        """Split inputs of a channel-local op: for broadcasting (element-wise) ops every input whose channel
        dimension lines up with the output's; otherwise the data input (the first)."""
        ins = [a for a in _tensor_inputs(node) if self.p.state[a].place != C]
        if node.target in _CONCATENATE:  # joined along another dim: every part must be this rank's channels
            for a in ins:
                self._need(node, a, S)
            return
        if _broadcasts(node):
            out = _shape(node)
            for a in ins:
                self._need(node, a, S if self._full_channels(a, out) else R)
            return
        for i, a in enumerate(ins):
            self._need(node, a, S if i == 0 else R)

    def _local(self, node: fx.Node, gatherable: bool | None = None) -> None:
        """A channel-local op with at least one split input: split output (see :meth:`_split_needs`)."""
        self._split_needs(node)
        self._check_split(node)
        self._set(node, S, self._all_gatherable(node) if gatherable is None else gatherable)

    def _full_channels(self, inp: fx.Node, out: tuple[int, ...] | None) -> bool:
        shape = _shape(inp)
        if shape is None or out is None or len(out) < 2:
            return self.p.state[inp].place == S
        ci = 1 - (len(out) - len(shape))
        return ci >= 0 and shape[ci] == out[1] and (shape[ci] > 1 or self.p.state[inp].place == S)

    def _check_split(self, node: fx.Node) -> None:
        shape = _shape(node)
        if shape is None or len(shape) < 2 or shape[1] % self.world:
            raise self._fail(node, "the op", f"gives {shape}, whose channels cannot be split into "
                                             f"{self.world} equal groups")

    # -- the forward pass ----------------------------------------------------------------------------
    def visit(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            self._set(node, R if _is_tensor(node) else C)
        elif node.op == "get_attr":
            value = _fetch(self.model, node)
            self.p.state[node] = NodeState(R if isinstance(value, torch.Tensor) else C, False,
                                           isinstance(value, nn.Parameter) and value.requires_grad)
        elif node.op == "output":
            for a in _tensor_inputs(node):
                self._need(node, a, R)
        elif node.op == "call_module":
            self._visit_module(node, self.modules[str(node.target)])
        else:
            self._visit_op(node)

    def _visit_module(self, node: fx.Node, m: nn.Module) -> None:
        cls = ops.module_class(m)
        name = f"{type(m).__name__}"
        if cls == "all_to_all":
            spec = spec_of_layer(m)
            why = spec.why_not_shardable if spec is not None else "it mixes every channel group"
            raise GroupParallelError(f"layer {str(node.target)!r} is a {type(m).__name__} ({why}); valid for group "
                                     f"parallelism: {', '.join(ops.shardable_layer_names())}")
        if cls == "layer":
            rule = ops.shard_rule(m)
            why_not = rule.check(m, self.world)
            if why_not:
                raise GroupParallelError(f"layer {str(node.target)!r} {why_not}")
            for a in _tensor_inputs(node):
                self._need(node, a, S)
            self._check_split(node)
            self._set(node, S, self._all_gatherable(node))
            return
        if not self._s_inputs(node):
            for a in _tensor_inputs(node):
                self._need(node, a, R)
            self._set(node, R if _is_tensor(node) else C, self._module_gatherable(node, m, cls))
            return
        if cls == "conv":
            assert isinstance(m, nn.Conv2d)
            if m.groups > 1 and m.groups % self.world == 0:
                return self._local(node)
            fix = "; convert it to GC / GC-2L with tglc_zoo.convert.to_grouped" if m.groups == 1 else ""
            return self._mix(node, f"{name} ({m.in_channels}->{m.out_channels}, groups={m.groups})",
                             f"mixes channels across groups (its groups must be a multiple of {self.world}){fix}")
        if cls == "per_channel":
            if isinstance(m, nn.GroupNorm) and m.num_groups % self.world:
                return self._mix(node, f"GroupNorm({m.num_groups} groups)",
                                 f"normalises over groups that span the {self.world} channel groups")
            if isinstance(m, nn.SyncBatchNorm):
                return self._mix(node, "SyncBatchNorm", "synchronises statistics over the data-parallel group")
            return self._local(node)
        if cls in ("elementwise", "drop_path"):
            if any(p.numel() for p in m.parameters()):
                return self._mix(node, name, "has parameters shared by all channels (their gradient would need an "
                                             "all-reduce)")
            return self._local(node)
        if cls == "spatial":
            return self._local(node, self._module_gatherable(node, m, cls))
        if cls == "flatten":
            assert isinstance(m, nn.Flatten)
            return self._flatten(node, m.start_dim, m.end_dim, name)
        if cls == "dropout":
            if float(getattr(m, "p", 0.0)) == 0.0:
                return self._local(node)
            return self._mix(node, f"{name}(p={getattr(m, 'p', '?')})",
                             "would draw its masks per rank; only pooled features are dropped (after an all-gather)")
        if cls == "layer_norm":
            return self._mix(node, name, "normalises over channels (it mixes every channel group)")
        if cls == "linear":
            return self._mix(node, name, "is a linear layer over the channels")
        return self._mix(node, name, "is not known to keep channel groups local")

    def _module_gatherable(self, node: fx.Node, m: nn.Module, cls: str) -> bool:
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
            return all(s == 1 for s in size)
        if cls == "flatten":
            return True
        if isinstance(m, (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)):
            return False
        return self._all_gatherable(node)

    def _flatten(self, node: fx.Node, start: int, end: int, op: str) -> None:
        shape = _shape(_tensor_inputs(node)[0])
        ndim = len(shape) if shape is not None else 4
        start, end = start % ndim, end % ndim
        if start == 1 and end == ndim - 1:
            return self._local(node, gatherable=True)
        if start >= 2:
            return self._local(node)
        return self._mix(node, op, "merges the channel dimension with the batch")

    def _visit_op(self, node: fx.Node) -> None:
        t = node.target
        op = ops.op_name(t)
        if t in ops.RANDOM_FUNCS or t in ops.RANDOM_METHODS:
            raise GroupParallelError(f"group parallelism cannot run {where(node)}: {op} draws random numbers, "
                                     "and every rank would draw different ones")
        if t in ops.DROPOUT_FUNCS:
            return self._dropout(node, op)
        if not _is_tensor(node):  # sizes, flags
            self._set(node, C)
            if self._reads_split_size(node):
                self.p.globalize.add(node)  # the single process's value, not this rank's
            return
        split = self._s_inputs(node)
        if not split:
            for a in _tensor_inputs(node):
                self._need(node, a, R)
            self._set(node, R, self._pools_op(node) or self._all_gatherable(node))
            return
        if t in ops.ELEMENTWISE_FUNCS or t in ops.ELEMENTWISE_METHODS or t in ops.BINARY_FUNCS \
                or t in ops.BINARY_METHODS:
            return self._local(node)
        if t in ops.REDUCTIONS:
            return self._reduce(node, op)
        if t in ops.SPATIAL_FUNCS:
            return self._spatial(node, op)
        if t in ops.FLATTEN:
            return self._flatten(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1), op)
        if t in ("view", "reshape", torch.reshape):
            return self._reshape(node, op)
        if t in ("permute", "transpose", torch.permute, torch.transpose, "swapaxes", "movedim"):
            return self._permute(node, op)
        if t in ("unsqueeze", "squeeze", torch.unsqueeze, torch.squeeze):
            dim = _arg(node, 1, "dim")
            shape = _shape(split[0])
            ndim = (len(shape) if shape else 4) + (1 if t in ("unsqueeze", torch.unsqueeze) else 0)
            if isinstance(dim, int) and dim % ndim >= 2:
                return self._local(node)
            return self._mix(node, op, "moves the channel dimension")
        if t in _CONCATENATE:
            dim = _arg(node, 1, "dim", 0)
            shape = _shape(split[0])
            if isinstance(dim, int) and shape is not None and dim % len(shape) != 1:
                return self._local(node)
            return self._mix(node, op, "concatenates channel-split tensors along the channels: the result's "
                                       "groups would interleave them")
        if t in (torch.softmax, torch.log_softmax, torch.nn.functional.softmax, torch.nn.functional.log_softmax,
                 "softmax", "log_softmax"):
            dim = _arg(node, 1, "dim")
            shape = _shape(split[0])
            if isinstance(dim, int) and shape is not None and dim % len(shape) >= 2:
                return self._local(node)
            return self._mix(node, op, "normalises over the channels")
        if t is operator.getitem:
            if isinstance(_val(node.args[0]), (tuple, list)):  # one output of a tuple-valued op: its placement
                self._need(node, split[0], S)
                self._set(node, S, self.p.state[split[0]].gatherable)
                return
            return self._mix(node, op, "indexes the tensor (it may select across channel groups)")
        return self._mix(node, op, "is not known to keep channel groups local")

    def _reads_split_size(self, node: fx.Node) -> bool:
        """``x.size(...)``, ``x.shape``, ``x.numel()`` of a split tensor (which would give this rank's count)."""
        t, args = node.target, node.args
        src = args[0] if args and isinstance(args[0], fx.Node) else None
        if src is None or src not in self.p.state or self.p.state[src].place != S:
            return False
        if node.op == "call_method" and t in ("size", "numel", "nelement"):
            return True
        return bool(t is getattr and len(args) > 1 and args[1] == "shape")

    def _pools_op(self, node: fx.Node) -> bool:
        """A global pool over the spatial dimensions, or the flatten of the classifier's input."""
        t = node.target
        shape = _shape(_tensor_inputs(node)[0]) if _tensor_inputs(node) else None
        ndim = len(shape) if shape is not None else 4
        if t in ops.REDUCTIONS:
            dims = _dims(_arg(node, 1, "dim"), ndim) or ()
            return bool(dims) and set(dims) >= set(range(2, ndim)) and 0 not in dims and 1 not in dims
        if t in ops.GLOBAL_POOLS:
            size = _arg(node, 1, "output_size")
            return all(v == 1 for v in (size if isinstance(size, (tuple, list)) else (size, size)))
        if t in ops.FLATTEN:
            return _arg(node, 1, "start_dim", 0) == 1
        return False

    def _dropout(self, node: fx.Node, op: str) -> None:
        p = float(_arg(node, 1, "p", 0.5))
        training = _arg(node, 2, "train" if node.target in (torch.dropout, torch.feature_dropout,
                                                            torch.alpha_dropout) else "training", True)
        if p == 0.0 or training is False:
            if self._s_inputs(node):
                return self._local(node)
            for a in _tensor_inputs(node):
                self._need(node, a, R)
            self._set(node, R, self._all_gatherable(node))
            return
        if node.target not in (torch.nn.functional.dropout, torch.dropout):
            if self._s_inputs(node):
                raise self._fail(node, f"{op}(p={p})", "would draw its masks per rank")
            raise GroupParallelError(f"group parallelism cannot run {where(node)}: {op}(p={p}) in training mode; "
                                     "only element-wise dropout is synchronised across ranks")
        self._mix(node, f"{op}(p={p})", "would draw its masks per rank; only pooled features are dropped "
                                        "(after an all-gather)")
        self.p.rewrites[node] = p

    def _reduce(self, node: fx.Node, op: str) -> None:
        shape = _shape(_tensor_inputs(node)[0])
        ndim = len(shape) if shape is not None else 4
        dims = _dims(_arg(node, 1, "dim"), ndim)
        if dims is None or not dims or 0 in dims or 1 in dims:
            return self._mix(node, op, "reduces over the channels (or the batch)")
        pooled = set(dims) >= set(range(2, ndim))
        return self._local(node, gatherable=pooled or self._all_gatherable(node))

    def _spatial(self, node: fx.Node, op: str) -> None:
        if node.target is torch.nn.functional.pad:
            pad = _arg(node, 1, "pad", ())
            shape = _shape(_tensor_inputs(node)[0])
            if shape is not None and len(pad) > 2 * (len(shape) - 2):
                return self._mix(node, op, "pads the channel dimension")
        if node.target in ops.GLOBAL_POOLS:
            size = _arg(node, 1, "output_size")
            size = size if isinstance(size, (tuple, list)) else (size, size)
            return self._local(node, gatherable=all(s == 1 for s in size))
        if node.target in (torch.nn.functional.interpolate, torch.nn.functional.upsample):
            return self._local(node, gatherable=False)
        return self._local(node)

    def _reshape(self, node: fx.Node, op: str) -> None:
        inp = _tensor_inputs(node)[0]
        before, after = _shape(inp), _shape(node)
        sizes: Any = node.args[1:] if node.target != torch.reshape else node.args[1:2]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if before is None or after is None or not sizes:
            return self._mix(node, op, "reshapes to sizes known only at run time")
        if len(after) == 2 and after[0] == before[0]:
            self.p.localize.add(node)  # the flatten of the classifier's input: this rank's block of it
            return self._local(node, gatherable=True)
        if after[:2] == before[:2]:
            self.p.localize.add(node)  # the channel size given (global) becomes this rank's
            return self._local(node)
        return self._mix(node, op, "changes the channel layout")

    def _permute(self, node: fx.Node, op: str) -> None:
        before, after = _shape(_tensor_inputs(node)[0]), _shape(node)
        dims = [a for a in node.args[1:] if isinstance(a, int)]
        if node.target in ("permute", torch.permute):
            order = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else dims
            keeps = len(order) >= 2 and order[0] == 0 and order[1] == 1
        else:
            ndim = len(before) if before else 4
            keeps = len(dims) == 2 and all(d % ndim >= 2 for d in dims)
        if keeps and before is not None and after is not None:
            return self._local(node)
        return self._mix(node, op, "moves the channel dimension")

    # -- the backward pass: split as early as possible -------------------------------------------------
    def flip(self) -> None:
        """Split replicated nodes whose consumers all want them split (reverse order: producers last).

        A consumer that pools the node (a global average pool of it, as squeeze-excitation does) does not
        stop it: the pool is split too and its pooled result all-gathered where needed, which costs
        ``B×C/N`` instead of recomputing (or all-gathering the gradient of) a whole activation.
        """
        for node in reversed(list(self.p.graph.nodes)):
            st = self.p.state.get(node)
            if st is None or st.place != R or node.op in ("placeholder", "get_attr", "output"):
                continue
            users = list(node.users)
            split = [u for u in users if self.p.needs.get((u, node)) == S]
            pools = [u for u in users if u not in split and self._pools(u, node)]
            if not split or len(split) + len(pools) != len(users):
                continue
            shape = _shape(node)
            if shape is None or len(shape) < 2 or shape[1] % self.world:
                continue
            kind = self._flip_kind(node)
            if kind is None:
                continue
            for u in pools:
                self.p.needs[(u, node)] = S
                self.p.state[u].place = S
            if kind == "local":
                self._split_needs(node)
            self.p.state[node].place = S

    def _pools(self, user: fx.Node, node: fx.Node) -> bool:
        """``user`` is a replicated global pool of ``node`` that could run split (its output is pooled features)."""
        st = self.p.state.get(user)
        if st is None or st.place != R or not st.gatherable or self._flip_kind(user) != "local":
            return False
        ins = [a for a in _tensor_inputs(user) if self.p.state[a].place != C]
        return ins == [node]

    def _flip_kind(self, node: fx.Node) -> str | None:
        """``"local"`` (channel-local: its inputs are split too), ``"split_out"`` (a dense conv on the image:
        this rank's output channels) or ``None`` (it cannot run split)."""
        ins = _tensor_inputs(node)
        if node.op == "call_module":
            m = self.modules[str(node.target)]
            cls = ops.module_class(m)
            zero_dropout = cls == "dropout" and float(getattr(m, "p", 0.0)) == 0.0
            if cls not in _FLIPPABLE_MODULES and not zero_dropout:
                return None
            if cls in ("elementwise", "drop_path") and any(p.numel() for p in m.parameters()):
                return None  # parameters shared by all channels
            if isinstance(m, nn.SyncBatchNorm) or (isinstance(m, nn.GroupNorm) and m.num_groups % self.world):
                return None
            if cls in ("conv", "group_conv"):
                assert isinstance(m, nn.Conv2d)
                if m.groups > 1 and m.groups % self.world == 0:
                    return "local"
                if m.groups == 1 and self.shard_stem and not any(self.p.state[a].grad for a in ins):
                    return "split_out"  # the stem: this rank's output channels of the image
                return None
            return "local"
        if node.op in ("call_function", "call_method"):
            t = node.target
            local = (t in ops.ELEMENTWISE_FUNCS or t in ops.ELEMENTWISE_METHODS or t in ops.BINARY_FUNCS
                     or t in ops.BINARY_METHODS or (t in ops.SPATIAL_FUNCS and t is not torch.nn.functional.pad)
                     or (t in ops.REDUCTIONS and self._spatial_dims(node)))
            return "local" if local else None
        return None

    def _spatial_dims(self, node: fx.Node) -> bool:
        shape = _shape(_tensor_inputs(node)[0]) if _tensor_inputs(node) else None
        dims = _dims(_arg(node, 1, "dim"), len(shape) if shape is not None else 4) or ()
        return bool(dims) and 0 not in dims and 1 not in dims

    # -- leaves ------------------------------------------------------------------------------------
    def leaves(self) -> None:
        for node in self.p.graph.nodes:
            if node.op != "call_module":
                continue
            name = str(node.target)
            m = self.modules[name]
            cls = ops.module_class(m)
            out = self.p.state[node].place
            ins = [self.p.needs[(node, a)] for a in _tensor_inputs(node) if (node, a) in self.p.needs]
            shape = _shape(node)
            channels = shape[1] if shape is not None and len(shape) >= 2 else 0
            if cls == "layer":
                plan = LeafPlan("layer", channels)
            elif cls == "conv" and out == S:
                need = self.p.needs.get((node, _tensor_inputs(node)[0]))
                plan = LeafPlan("local_conv" if need == S else "split_out", channels)
            elif cls == "per_channel" and out == S:
                plan = LeafPlan("per_channel", channels)
            elif cls == "dropout" and float(getattr(m, "p", 0.0)) > 0.0 and R in ins:
                plan = LeafPlan("synced_dropout")
            elif cls == "drop_path" and float(getattr(m, "drop_prob", getattr(m, "p", 0.0))) > 0.0:
                plan = LeafPlan("synced_drop_path")
            else:
                has_state = any(True for _ in m.parameters()) or any(True for _ in m.buffers())
                plan = LeafPlan("replicated" if has_state else "stateless")
            old = self.p.leaves.get(name)
            if old is not None and old != plan:
                raise GroupParallelError(f"module {name!r} is called twice and would be split differently "
                                         f"({old.kind} and {plan.kind}); group parallelism needs one placement "
                                         "per module")
            self.p.leaves[name] = plan


def _fetch(model: nn.Module, node: fx.Node) -> Any:
    obj: Any = model
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    return obj


def place_graph(model: nn.Module, graph: fx.Graph, world: int, shard_stem: bool = True) -> PlacedGraph:
    """Place every node of ``graph`` (a trace of ``model`` with fake-tensor values) over ``world`` ranks."""
    placer = Placer(model, graph, world, shard_stem)
    for node in graph.nodes:
        placer.visit(node)
    placer.flip()
    placer.leaves()
    if not any(p.kind in LOCAL_KINDS for p in placer.p.leaves.values()):
        raise GroupParallelError(f"{type(model).__name__} has no layer that group parallelism splits over {world} "
                                 "processes (no GC / GC-2L layer on its main path)")
    return placer.p


