"""Parallel modes: the typed contract between the trainer and anything that spreads a model over processes.

The trainer (:mod:`tglc_zoo.training`) asks a :class:`ParallelMode` — never the wrapped module — to

* :meth:`~ParallelMode.setup` the run: build the model (given a builder), place it on the device and wrap
  it; the :class:`Parallelized` it returns says which slice of every global batch this process reads
  and whose metrics add up (the default builds, moves, then calls :meth:`~ParallelMode.wrap`);
* save and load checkpoints, either in single-process layout (:meth:`~ParallelMode.training_state` /
  :meth:`~ParallelMode.load_training_state`; ``sharded_checkpoints = False``) or sharded, every rank writing
  its own slices (:meth:`~ParallelMode.save_sharded` / :meth:`~ParallelMode.load_sharded`);
* make replicas agree on their buffers before evaluating or saving (:meth:`~ParallelMode.sync_buffers`);
* skip gradient synchronisation on all but the last micro-batch (:meth:`~ParallelMode.no_sync`).

Two modes are built in and always registered — ``data`` (DistributedDataParallel; a no-op alone) and
``group`` (group × data parallelism on a ``(data, group)`` mesh, :mod:`.mesh`) — and
:func:`register_parallel_mode` adds more by name.
"""
from __future__ import annotations

import contextlib
import datetime
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

from ..errors import GroupParallelError
from ..util.choices import check_choice
from .checkpoint import load_slices
from .context import DistContext
from .deferred_init import NotReplayableError, deferred_build, materialize_empty
from .grad_sync import GradientAverager
from .group_parallel import GroupParallel, group_parallel
from .mesh import ParallelLayout, init_layout
from .plan import check_supported
from .sharded_checkpoint import load_sharded, save_sharded, training_tensors
from .training_state import gather_training_state, scatter_training_state

__all__ = ["ParallelMode", "Parallelized", "DataParallelMode", "GroupMode", "PARALLEL_MODES",
           "register_parallel_mode", "get_parallel_mode"]

StateDicts = tuple[dict[str, torch.Tensor], dict[str, Any]]


@dataclass
class Parallelized:
    """One run's model under a parallel mode.

    ``model`` is the module the optimizer steps and checkpoints describe; ``net`` is called for
    forward/backward and evaluation. This process reads slice ``data_rank`` of ``data_world`` of every
    global batch; metrics add up over ``data_group`` (``None``: every rank, when ``data_world`` > 1).
    """

    model: nn.Module
    net: nn.Module
    data_rank: int = 0
    data_world: int = 1
    data_group: dist.ProcessGroup | None = None
    layout: ParallelLayout | None = None
    notes: list[str] = field(default_factory=list)


class ParallelMode(ABC):
    """How the trainer runs a model over the processes of a run (see the module docstring)."""

    name: str = ""
    shard_data: bool = True
    sharded_checkpoints: bool = False
    description: str = ""

    def setup(self, build: Callable[[], nn.Module], ctx: DistContext,
              memory_format: torch.memory_format = torch.contiguous_format) -> Parallelized:
        """Build the model with ``build()``, move it to ``ctx.device`` and :meth:`wrap` it."""
        model = build()
        model.to(ctx.device, memory_format=memory_format)  # type: ignore[call-overload]
        net = self.wrap(model, ctx)
        split = self.shard_data and ctx.distributed
        return Parallelized(model, net, ctx.rank if split else 0, ctx.world_size if split else 1)

    @abstractmethod
    def wrap(self, model: nn.Module, ctx: DistContext) -> nn.Module:
        """The module to call for forward/backward and evaluation.

        It may turn ``model`` into its shard in place, but the parameter objects the optimizer is built
        over must stay the ones that train.
        """

    def training_state(self, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer) -> StateDicts:
        """``(model state, optimizer state)`` in single-process layout; runs on every rank."""
        return model.state_dict(), optimizer.state_dict()

    def load_training_state(self, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                            model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> None:
        """Load a single-process-layout state into the wrapped model and its optimizer (after :meth:`wrap`)."""
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)

    def save_sharded(self, path: Path, par: Parallelized, optimizer: torch.optim.Optimizer,
                     rng: dict[str, torch.Tensor], on_complete: Callable[[Path], None]) -> Path:
        """Collective, for modes with ``sharded_checkpoints``: every rank writes its slices into ``path``;
        ``on_complete(folder)`` runs on rank 0 before the folder gets its final name."""
        raise NotImplementedError(f"parallel mode {self.name!r} does not write sharded checkpoints")

    def load_sharded(self, path: Path, par: Parallelized, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """Collective: load this rank's slices of ``path``; returns this rank's saved RNG tensors."""
        raise NotImplementedError(f"parallel mode {self.name!r} does not read sharded checkpoints")

    def load_weights(self, par: Parallelized, path: Path) -> None:
        """Load a single-process safetensors file of weights into the model (after :meth:`setup`)."""
        from ..checkpoint.safetensors_io import load_weights

        par.model.load_state_dict(load_weights(path), strict=True)

    def sync_buffers(self, par: Parallelized) -> None:
        """Make every replica hold the same buffers (BatchNorm statistics) before evaluating or saving.

        Nothing to do by default: DistributedDataParallel broadcasts rank 0's buffers before every forward.
        """
        return None

    def no_sync(self, net: nn.Module) -> contextlib.AbstractContextManager[Any]:
        """A context in which backward does not synchronise gradients (for gradient accumulation)."""
        return contextlib.nullcontext()


class DataParallelMode(ParallelMode):
    """DistributedDataParallel over torchrun's processes (a no-op when running alone)."""

    name, shard_data = "data", True
    description = "DistributedDataParallel over torchrun's processes (a no-op when running alone)"

    def wrap(self, model: nn.Module, ctx: DistContext) -> nn.Module:
        if not ctx.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def no_sync(self, net: nn.Module) -> contextlib.AbstractContextManager[Any]:
        if hasattr(net, "no_sync"):  # DistributedDataParallel's (nn.Module's stubs type attributes Tensor | Module)
            return cast("Callable[[], contextlib.AbstractContextManager[Any]]", net.no_sync)()
        return contextlib.nullcontext()


def _materialized_shard(build: Callable[[], nn.Module], layout_for: Callable[[int], ParallelLayout],
                        notes: list[str]) -> tuple[GroupParallel, ParallelLayout]:
    """The model built on the meta device, sharded, and only this rank's slices materialised on the CPU."""
    try:
        model, record = deferred_build(build)
    except NotReplayableError as e:  # raised while recording: build it whole
        model, record = build(), None
        notes.append(f"built the whole model before sharding ({e})")
    _, groups = check_supported(model)
    layout = layout_for(groups)
    shard = group_parallel(model, group=layout.group_pg, inplace=True)
    if record is None:
        return shard, layout
    materialize_empty(shard, "cpu")
    targets = shard.module.state_dict(keep_vars=True)
    sharded, rank = set(shard.plan.sharded), layout.group_rank

    def put(key: str, full: torch.Tensor) -> None:
        with torch.no_grad():
            targets[key].copy_(shard.plan.local_slice(full, rank, key) if key in sharded else full)

    try:
        record.replay(put)
    except NotReplayableError as e:
        raise GroupParallelError(f"this model's initialisation cannot be replayed one tensor at a time ({e}); "
                                 "build it with tglc_zoo.distributed.group_parallel from a full model instead") from e
    notes.append("built on the meta device; this rank materialised only its slices")
    return shard, layout


class GroupMode(ParallelMode):
    """Group × data parallelism: D replicas of an N-rank group-parallel model (N = the model's groups).

    Process ``r`` is group rank ``r % N`` of replica ``r // N`` (:mod:`.mesh`). The model is built on the
    meta device and each rank materialises only its slices, initialised exactly as the single-process
    model is for the same seed (:mod:`.deferred_init`). Ranks of one replica read the same slice of
    every global batch (broadcast from its group rank 0, whose augmentation draws count); each rank
    averages its shard's gradients over the replicas (:mod:`.grad_sync`). Checkpoints are sharded
    (:mod:`.sharded_checkpoint`).
    """

    name, shard_data, sharded_checkpoints = "group", False, True
    description = ("group x data parallelism: world = D x N processes, process r holds channel group r % N of "
                   "replica r // N (tglc_zoo.distributed)")

    def _need_processes(self, groups: Any) -> GroupParallelError:
        return GroupParallelError(f"--parallel group needs one process per group: launch with torchrun "
                                  f"--nproc_per_node {groups} (or a multiple of it, for data-parallel replicas)")

    def setup(self, build: Callable[[], nn.Module], ctx: DistContext,
              memory_format: torch.memory_format = torch.contiguous_format) -> Parallelized:
        if not ctx.distributed:
            model = build()
            raise self._need_processes(getattr(model, "groups", "N"))
        notes: list[str] = []
        timeout = datetime.timedelta(seconds=ctx.timeout_s)
        shard, layout = _materialized_shard(
            build, lambda groups: init_layout(groups, device_type=ctx.device.type, timeout=timeout), notes)
        shard.to(ctx.device, memory_format=memory_format)  # type: ignore[call-overload]
        shard.sync_inputs = True
        if layout.data > 1:
            shard.grad_sync = GradientAverager(list(shard.module.named_parameters()), layout.data_pg)
        notes.insert(0, layout.describe())
        return Parallelized(shard.module, shard, layout.data_rank, layout.data, layout.data_pg, layout, notes)

    def wrap(self, model: nn.Module, ctx: DistContext) -> nn.Module:
        """Shard an already built model (every rank holding the same weights) over all processes (D = 1)."""
        if not ctx.distributed:
            raise self._need_processes(getattr(model, "groups", "N"))
        shard = group_parallel(model, inplace=True)
        shard.sync_inputs = True
        return shard

    def training_state(self, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer) -> StateDicts:
        assert isinstance(net, GroupParallel)
        return gather_training_state(net, optimizer)

    def load_training_state(self, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                            model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> None:
        assert isinstance(net, GroupParallel)
        scatter_training_state(net, optimizer, model_state, optimizer_state)

    def save_sharded(self, path: Path, par: Parallelized, optimizer: torch.optim.Optimizer,
                     rng: dict[str, torch.Tensor], on_complete: Callable[[Path], None]) -> Path:
        assert isinstance(par.net, GroupParallel) and par.layout is not None
        state = training_tensors(par.net, optimizer, par.layout, {**rng, **{
            f"gp/{k}": v for k, v in par.net.random_state().items()}})
        return save_sharded(path, state, on_complete=on_complete)

    def load_sharded(self, path: Path, par: Parallelized, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        assert isinstance(par.net, GroupParallel) and par.layout is not None
        rng = load_sharded(path, par.net, optimizer, par.layout)
        par.net.set_random_state({k[3:]: v for k, v in rng.items() if k.startswith("gp/")})
        return {k: v for k, v in rng.items() if not k.startswith("gp/")}

    def load_weights(self, par: Parallelized, path: Path) -> None:
        """Each rank reads only its rows of every split tensor."""
        load_slices(par.net, path)

    def sync_buffers(self, par: Parallelized) -> None:
        """BatchNorm statistics follow replica 0 (as DistributedDataParallel's follow rank 0)."""
        if par.layout is None or par.layout.data == 1:
            return
        src = par.layout.data_peers(par.layout.group_rank)[0]
        for b in par.model.buffers():
            dist.broadcast(b, src=src, group=par.layout.data_pg)

    def no_sync(self, net: nn.Module) -> contextlib.AbstractContextManager[Any]:
        sync = getattr(net, "grad_sync", None)
        return sync.no_sync() if sync is not None else contextlib.nullcontext()


PARALLEL_MODES: dict[str, ParallelMode] = {m.name: m for m in (DataParallelMode(), GroupMode())}


def register_parallel_mode(mode: ParallelMode) -> None:
    """Make ``mode`` selectable by its name (``TrainConfig.parallel`` / ``tglc-train --parallel``)."""
    if not isinstance(mode, ParallelMode) or not mode.name:
        raise TypeError(f"register_parallel_mode takes a named ParallelMode instance, got {mode!r}")
    PARALLEL_MODES[mode.name] = mode


def get_parallel_mode(name: str) -> ParallelMode:
    """The registered mode called ``name``; unknown names raise an error listing the choices."""
    return PARALLEL_MODES[check_choice("parallel mode", name, PARALLEL_MODES)]
