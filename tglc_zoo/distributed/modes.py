"""Parallel modes: the typed contract between the trainer and anything that spreads a model over processes.

The trainer (:mod:`tglc_zoo.training`) asks a :class:`ParallelMode` — never the wrapped module — to

* :meth:`~ParallelMode.wrap` the model into the module it runs forward/backward with;
* produce the model and optimizer state in single-process layout for checkpoints
  (:meth:`~ParallelMode.training_state`, called on every rank: it may be a collective);
* load such a state after wrapping, on resume (:meth:`~ParallelMode.load_training_state`);
* skip gradient synchronisation on all but the last micro-batch (:meth:`~ParallelMode.no_sync`).

``shard_data`` says whether each rank reads its own slice of every global batch (data parallel) or
all ranks read the whole batch (group parallel). Two modes are built in and always registered —
``data`` (DistributedDataParallel; a no-op alone) and ``group`` (group parallelism) — and
:func:`register_parallel_mode` adds more by name.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from ..errors import GroupParallelError
from ..util.choices import check_choice
from .context import DistContext
from .group_parallel import GroupParallel, group_parallel
from .training_state import gather_training_state, scatter_training_state

__all__ = ["ParallelMode", "DataParallelMode", "GroupMode", "PARALLEL_MODES", "register_parallel_mode",
           "get_parallel_mode"]

StateDicts = tuple[dict[str, torch.Tensor], dict[str, Any]]


class ParallelMode(ABC):
    """How the trainer runs a model over the processes of a run (see the module docstring)."""

    name: str = ""
    shard_data: bool = True
    description: str = ""

    @abstractmethod
    def wrap(self, model: nn.Module, ctx: DistContext) -> nn.Module:
        """The module to call for forward/backward and evaluation.

        It may turn ``model`` into its shard in place, but the parameter objects the optimizer was
        built over must stay the ones that train.
        """

    def training_state(self, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer) -> StateDicts:
        """``(model state, optimizer state)`` in single-process layout; runs on every rank."""
        return model.state_dict(), optimizer.state_dict()

    def load_training_state(self, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                            model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> None:
        """Load a single-process-layout state into the wrapped model and its optimizer (after :meth:`wrap`)."""
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)

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


class GroupMode(ParallelMode):
    """Group parallelism: process k holds group k of every GC/GC-2L layer; every process reads the whole batch.

    The model becomes this rank's shard in place, so the trainer's optimizer steps the shard.
    Training batches are broadcast from rank 0 (``sync_inputs``): the trainer draws augmentation
    differently per rank, and every shard must see the same images.
    """

    name, shard_data = "group", False
    description = ("group parallelism: process k holds group k of every GC/GC-2L layer (tglc_zoo.distributed); "
                   "every process reads the whole batch")

    def wrap(self, model: nn.Module, ctx: DistContext) -> nn.Module:
        if not ctx.distributed:
            raise GroupParallelError(f"--parallel group needs one process per group: launch with torchrun "
                                     f"--nproc_per_node {getattr(model, 'groups', 'N')}")
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


PARALLEL_MODES: dict[str, ParallelMode] = {m.name: m for m in (DataParallelMode(), GroupMode())}


def register_parallel_mode(mode: ParallelMode) -> None:
    """Make ``mode`` selectable by its name (``TrainConfig.parallel`` / ``tglc-train --parallel``)."""
    if not isinstance(mode, ParallelMode) or not mode.name:
        raise TypeError(f"register_parallel_mode takes a named ParallelMode instance, got {mode!r}")
    PARALLEL_MODES[mode.name] = mode


def get_parallel_mode(name: str) -> ParallelMode:
    """The registered mode called ``name``; unknown names raise an error listing the choices."""
    return PARALLEL_MODES[check_choice("parallel mode", name, PARALLEL_MODES)]
