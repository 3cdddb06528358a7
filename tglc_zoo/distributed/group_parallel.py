"""``group_parallel(model)``: this rank's shard of a GC/GC-2L model (the paper's section 3.2, Figure 2) — any CNN.

The model is traced with ``torch.fx`` and every tensor placed (:mod:`.placement`): process k of N holds
group k of every GC/GC-2L layer, the channels k of everything per-channel between the stem and the
pooled features (BatchNorm, activations, residual adds, pooling, depthwise convs), and output channels
k of the stem; layers that mix pooled features (the classifier, squeeze-excitation) are replicated
behind an all-gather of those features. ``forward`` takes the full batch (identical on every rank) and
returns the full output (identical on every rank):

    stem (output channels k) → body (split; one all-gather of N channels per GC-2L layer, none per
    GC layer) → global pool → all-gather features → classifier (replicated)

Every rank computes the same loss from the same logits; gradients are then exact without any
gradient all-reduce (see :mod:`.collectives` for why each backward is what it is). Anything that
would mix channel groups elsewhere is refused with an error naming the module and the op.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.fx as fx
from torch import nn

from .collectives import PEER_FAILURE, CollectiveError, CommStats, _all_gather, _run
from .graph_shard import graph_module, local_modules, needs_seed, shard_graph
from .plan import Analysis, GroupParallelError, ShardPlan, analyse, check_supported, plan_from_analysis
from .shard import _SyncedRandom

__all__ = ["GroupParallel", "group_parallel"]


def _seed_from_rank0(group: dist.ProcessGroup | None) -> int:
    t = torch.tensor([torch.initial_seed() % (2 ** 62)], dtype=torch.int64)
    if dist.get_backend(group) == "nccl":
        t = t.cuda()
    src = 0 if group is None else dist.get_global_rank(group, 0)
    dist.broadcast(t, src=src, group=group)
    return int(t.item())


class GroupParallel(nn.Module):
    """This rank's shard of a group-parallel model. Its parameters are rank k's slices.

    Attributes:
        module: the sharded copy of the model (same state-dict keys as the single-process model).
        plan: which keys are split along dim 0 and which are replicated.
        rank, world_size, group: the position in the process group.
        comm_stats: byte counters of every collective this shard ran (reset with ``comm_stats.reset()``).
        sync_inputs: in training mode, broadcast each input batch from rank 0 first (costs the batch's
            bytes per step). For loaders whose random augmentation differs between ranks — every rank
            must see the same images, or the shards compute on different data.
    """

    def __init__(self, module: nn.Module, plan: ShardPlan, rank: int, group: dist.ProcessGroup | None,
                 stats: CommStats, shard_stem: bool = True, *, graphs: dict[str, fx.Graph] | None = None,
                 ops: dict[str, nn.Module] | None = None, analysis: Analysis | None = None) -> None:
        super().__init__()
        self.module, self.shard_stem = module, shard_stem
        self.gp = nn.ModuleDict(ops or {})
        self.plan, self.rank, self.world_size, self.group = plan, rank, plan.world_size, group
        self.comm_stats = stats
        self.sync_inputs = False
        self.grad_sync: Any = None  # a GradientAverager over the data dimension of a mesh, when there is one
        self.analysis = analysis
        # not registered: their leaves are the modules of ``module`` and ``gp`` themselves
        self._graphs = {mode: graph_module(module, self.gp, g) for mode, g in (graphs or {}).items()}

    def _broadcast_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().contiguous().clone()
        src = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        try:
            dist.broadcast(x, src=src, group=self.group)
        except Exception as e:
            raise CollectiveError(f"group-parallel broadcast of the input batch failed on rank {self.rank}: "
                                  f"{PEER_FAILURE}, or ranks got batches of different shapes ({tuple(x.shape)} "
                                  f"here). Backend error: {type(e).__name__}: {e}") from e
        nbytes = x.numel() * x.element_size()
        self.comm_stats.add("input_broadcast", nbytes, (self.world_size - 1) * nbytes if self.rank == 0 else 0)
        return x

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.sync_inputs and self.training:
            x = self._broadcast_input(x)
        return self._graphs["train" if self.training else "eval"](x, *args, **kwargs)

    def describe(self) -> str:
        """The collectives one training forward runs (and their backward), at the traced input shape."""
        if self.analysis is None:
            return "no analysis attached"
        lines = [f"group parallelism over {self.world_size} ranks, traced at input {self.analysis.traced.input_shape}"]
        for c in self.analysis.communication("train"):
            lines.append(f"  {c['op']:<18} {str(c['per_rank']):<22} at {c['where']}; backward: {c['backward']}")
        return "\n".join(lines)

    # -- state -----------------------------------------------------------------------------------
    def local_state_dict(self) -> dict[str, torch.Tensor]:
        """This rank's tensors under the single-process keys (sharded ones are slice ``rank``)."""
        return OrderedDict((k, v.detach()) for k, v in self.module.state_dict().items())

    def load_local_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict)

    def load_full_state_dict(self, state_dict: dict[str, torch.Tensor]) -> Any:
        """Load a single-process state dict: this rank keeps its slices (no communication)."""
        return self.module.load_state_dict(self.plan.split_rank(state_dict, self.rank), strict=True)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Collective (call on every rank): the single-process state dict, same keys as ``create_model``."""
        sharded = set(self.plan.sharded)
        out: dict[str, torch.Tensor] = OrderedDict()
        for k, v in self.module.state_dict().items():
            v = v.detach()
            if k in sharded:
                full = v.new_empty((self.world_size * v.shape[0], *v.shape[1:]))
                _run("all-gather", _all_gather, full, v.contiguous(), self.group, f"state {k!r}")
                v = full
            out[k] = v.clone()
        return out

    def random_state(self) -> dict[str, torch.Tensor]:
        """The synchronised dropout generators' states (``<module>/<device>`` -> state), for an exact resume."""
        return {f"{name}/{dev}": t for name, m in self.named_modules() if isinstance(m, _SyncedRandom)
                for dev, t in m.random_state().items()}

    def set_random_state(self, state: dict[str, torch.Tensor]) -> None:
        modules = dict(self.named_modules())
        for key, value in state.items():
            name, _, dev = key.rpartition("/")
            module = modules.get(name)
            if isinstance(module, _SyncedRandom):
                module.set_random_state({dev: value})

    # -- accounting ------------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """Parameters on this rank: ``sharded`` (its slices of the replaced layers/BN) and ``replicated``."""
        sharded = set(self.plan.sharded)
        counts = {"sharded": 0, "replicated": 0}
        for k, p in self.module.named_parameters():
            counts["sharded" if k in sharded else "replicated"] += p.numel()
        counts["total"] = counts["sharded"] + counts["replicated"]
        return counts


def group_parallel(model: nn.Module, group: dist.ProcessGroup | None = None, *, shard_stem: bool = True,
                   inplace: bool = False, example_input: Sequence[int] | torch.Tensor | None = None) -> GroupParallel:
    """Return this rank's shard of ``model`` — any CNN whose GC / GC-2L layers have ``groups`` = N.

    ``model`` may be a tglc_zoo model, or a timm / torchvision CNN converted by
    :func:`tglc_zoo.convert.to_grouped` (or anything with GC / GC-2L layers that ``torch.fx`` can trace). It
    is traced in training and evaluation mode and every op checked (:mod:`.placement`): channel-local
    ops run split; layers that mix *pooled* features (the classifier, squeeze-excitation) run replicated
    after an all-gather of those features (``B×C/N`` per rank); any other op that mixes channel groups
    raises :class:`GroupParallelError` naming the module and the op. ``describe()`` on the result lists
    every collective.

    Call on every rank of an initialised process group of size N, with the same model on every rank
    (same seed, or the same checkpoint; a model on the meta device shards without allocating — then
    ``to_empty`` and load the rank's tensors). Raises :class:`GroupParallelError` for ``shuffle``/``flgc``
    or ``sc`` models, and when the world size differs from ``groups``.

    ``shard_stem=True`` splits the stem by output channel (exact, no communication at the body entry);
    ``False`` replicates it and slices its output (backward: an all-gather of that output's gradient).
    ``inplace=True`` turns ``model`` itself into the shard, keeping its parameter objects (each now holds
    its slice), so an optimizer built over ``model.parameters()`` before the call steps the shard; the
    default leaves ``model`` untouched and copies only the replicated parts. ``example_input``: the
    ``(B, C, H, W)`` to trace with (default: the model's data config).
    """
    check_supported(model)
    if not (dist.is_available() and dist.is_initialized()):
        raise GroupParallelError("group_parallel needs an initialised process group: call "
                                 "torch.distributed.init_process_group (torchrun sets up the environment) first")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if rank < 0:
        raise GroupParallelError("this process is not a member of the given process group")
    analysis = analyse(model, world, shard_stem, example_input)
    plan = plan_from_analysis(model, analysis)
    seed = _seed_from_rank0(group) if needs_seed(analysis.leaves, analysis.placements) else 0
    stats = CommStats()
    new = local_modules(model, analysis.leaves, rank, world, group, stats, seed, reuse=inplace)
    if inplace:
        names: dict[int, list[str]] = {}  # every name of a module (one module may sit under several)
        for name, module in model.named_modules(remove_duplicate=False):
            names.setdefault(id(module), []).append(name)
        for name, module in new.items():
            for alias in names[id(model.get_submodule(name))]:
                parent, _, attr = alias.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, attr, module)
        sharded = model
    else:  # deepcopy everything else; the split leaves are taken from the memo, not copied
        sharded = copy.deepcopy(model, {id(model.get_submodule(k)): v for k, v in new.items()})
    ops: dict[str, nn.Module] = {}
    graphs = {mode: shard_graph(p, sharded, group, stats, ops, seed) for mode, p in analysis.placements.items()}
    return GroupParallel(sharded, plan, rank, group, stats, shard_stem, graphs=graphs, ops=ops, analysis=analysis)
