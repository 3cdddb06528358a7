"""Sharded checkpoints of a group-parallel run, in ``torch.distributed.checkpoint`` (DCP) format.

Every rank saves and loads only its own slices; no rank ever holds the full state. One checkpoint is a
folder that DCP writes (``.metadata`` and one ``__<rank>_0.distcp`` file per rank) holding:

* ``model.<key>`` — every tensor of the model's state dict, as a ``DTensor`` on the ``(data, group)`` mesh
  (:mod:`.mesh`): ``[Replicate(), Shard(0)]`` for the keys group parallelism splits, ``[Replicate(),
  Replicate()]`` for the rest. DCP records each tensor's global shape and which rows each file holds, so
  a checkpoint loads on any number of replicas, and converts offline to the single-process state dict;
* ``optim.<key>.<name>`` — the optimizer's per-parameter tensors (SGD's ``momentum_buffer``; Adam's
  ``exp_avg`` ...), placed like their parameter;
* ``rng.<rank>.<name>`` — each rank's random-number-generator state (CPU, CUDA, Python, NumPy and the
  shard's synchronised dropout), under its own global rank.

Replicas hold the same slices, so DCP writes each slice once. Only tensors are stored: DCP reads anything
else with ``pickle``. Its ``.metadata`` file is itself a pickle; :class:`SafeFileSystemReader` reads it
with an unpickler that admits only DCP's metadata classes (and refuses anything else without running it).

The folder is written under ``<name>.partial`` and renamed when every rank has finished, so a crash
during a save never leaves a folder that looks complete. Every rank must see the same folder: one
machine, or a shared file system.
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.metadata import Metadata, TensorStorageMetadata
from torch.distributed.tensor import DTensor, Replicate, Shard

from ..errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError
from ..util.atomic import fsync_path
from .group_parallel import GroupParallel
from .mesh import ParallelLayout

__all__ = ["SafeFileSystemReader", "read_metadata", "save_sharded", "load_sharded", "read_full_tensors",
           "training_tensors", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"

_ALLOWED: dict[str, frozenset[str]] = {
    "torch.distributed.checkpoint.metadata": frozenset({
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING"}),
    "torch.distributed.checkpoint.filesystem": frozenset({"_StorageInfo"}),
    "torch.serialization": frozenset({"_get_layout"}),
    "torch": frozenset({"Size"}),
    "pathlib": frozenset({"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"}),
    "collections": frozenset({"OrderedDict"}),
    "builtins": frozenset({"set", "frozenset"}),
}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise UnsafeCheckpointError(f"the DCP metadata asks to load {module}.{name}, which is not part of a "
                                    "checkpoint's metadata; refused without running it")


def read_metadata(path: str | os.PathLike[str]) -> Metadata:
    """The ``.metadata`` of a DCP folder, read with the restricted unpickler."""
    file = Path(path) / ".metadata"
    if not file.is_file():
        raise CorruptCheckpointError(f"{path} is not a complete sharded checkpoint: {file.name} is missing")
    try:
        meta = _MetadataUnpickler(io.BytesIO(file.read_bytes())).load()
    except UnsafeCheckpointError:
        raise
    except Exception as e:
        raise CorruptCheckpointError(f"cannot read {file}: {type(e).__name__}: {str(e)[:200]}") from e
    if not isinstance(meta, Metadata):
        raise CorruptCheckpointError(f"{file} holds a {type(meta).__name__}, not DCP metadata")
    return meta


class SafeFileSystemReader(FileSystemReader):
    """DCP's file reader, with :func:`read_metadata` instead of a plain ``pickle.load``."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        meta = read_metadata(self.path)
        bad = [k for k, v in meta.state_dict_metadata.items() if not isinstance(v, TensorStorageMetadata)]
        if bad:
            raise UnsafeCheckpointError(f"{self.path} stores non-tensor items {bad[:5]}, which DCP would unpickle; "
                                        "a tglc_zoo checkpoint holds tensors only")
        return meta


def _placed(local: torch.Tensor, layout: ParallelLayout, split: bool) -> DTensor:
    assert layout.mesh is not None
    placements = [Replicate(), Shard(0) if split else Replicate()]
    return DTensor.from_local(local.detach(), layout.mesh, placements, run_check=False)


def training_tensors(shard: GroupParallel, optimizer: torch.optim.Optimizer | None, layout: ParallelLayout,
                     rng: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """This rank's part of the DCP state dict: its model slices, optimizer slices and RNG state."""
    sharded = set(shard.plan.sharded)
    out: dict[str, Any] = {f"model.{k}": _placed(v, layout, k in sharded) for k, v in shard.local_state_dict().items()}
    if optimizer is not None:
        names = {id(p): n for n, p in shard.module.named_parameters()}
        for p, entry in optimizer.state.items():
            name = names[id(p)]
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    like = value.dim() > 0 and value.shape == p.shape
                    out[f"optim.{name}.{key}"] = _placed(value, layout, like and name in sharded)
    for key, value in (rng or {}).items():
        out[f"rng.{layout.rank}.{key}"] = value
    return out


def save_sharded(path: str | os.PathLike[str], state: dict[str, Any], group: dist.ProcessGroup | None = None, *,
                 on_complete: Callable[[Path], None] | None = None) -> Path:
    """Collective: write ``state`` (from :func:`training_tensors`) as the DCP folder ``path``.

    Written under ``path.partial``; when every rank's files are complete, rank 0 calls
    ``on_complete(partial_folder)`` (to add files of its own) and renames the folder. An existing ``path``
    is replaced.
    """
    final = Path(path).absolute()
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    rank = dist.get_rank()
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    dist.barrier(group=group)
    dcp.save(state, storage_writer=FileSystemWriter(partial, sync_files=True), process_group=group)
    dist.barrier(group=group)
    if rank == 0:
        if on_complete is not None:
            on_complete(partial)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        fsync_path(final.parent)
    dist.barrier(group=group)
    return final


def load_sharded(path: str | os.PathLike[str], shard: GroupParallel, optimizer: torch.optim.Optimizer | None,
                 layout: ParallelLayout, group: dist.ProcessGroup | None = None) -> dict[str, torch.Tensor]:
    """Collective: load this rank's slices of ``path`` into ``shard`` and ``optimizer`` (in place).

    Returns this rank's saved RNG tensors (empty when the checkpoint has none for this rank: it was written
    by fewer processes). The model must have the checkpoint's tensors and shapes; the optimizer's state is
    created for the entries the checkpoint holds.
    """
    meta = read_metadata(path)
    saved = meta.state_dict_metadata
    sharded = set(shard.plan.sharded)
    state = training_tensors(shard, None, layout)
    missing = sorted(k[len("model."):] for k in state if k not in saved)
    unexpected = sorted(k[len("model."):] for k in saved if k.startswith("model.") and k not in state)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not hold this model's state: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}")
    for k, v in state.items():
        want = tuple(v.shape)
        got = tuple(saved[k].size)  # type: ignore[union-attr]  # tensors only (SafeFileSystemReader)
        if want != got:
            raise CheckpointError(f"{path}: {k[len('model.'):]!r} has shape {got} there, {want} in the model")
    params = dict(shard.module.named_parameters())
    optim_targets: dict[str, tuple[torch.nn.Parameter, str]] = {}
    if optimizer is not None:
        for k, md in saved.items():
            if not k.startswith("optim."):
                continue
            name, _, entry = k[len("optim."):].rpartition(".")
            if name not in params:
                raise CheckpointError(f"{path} holds optimizer state for {name!r}, which the model does not have")
            p = params[name]
            size = tuple(md.size)  # type: ignore[union-attr]
            split = name in sharded and size == (p.shape[0] * layout.groups, *p.shape[1:])
            local = torch.zeros(p.shape if split else size, dtype=md.properties.dtype,  # type: ignore[union-attr]
                                device=p.device)
            state[k] = _placed(local, layout, split)
            optim_targets[k] = (p, entry)
    prefix = f"rng.{layout.rank}."
    rng_keys = [k for k in saved if k.startswith(prefix)]
    for k in rng_keys:
        md = saved[k]
        state[k] = torch.empty(tuple(md.size), dtype=md.properties.dtype)  # type: ignore[union-attr]
    dcp.load(state, storage_reader=SafeFileSystemReader(path), process_group=group)
    with torch.no_grad():
        local_state = shard.module.state_dict(keep_vars=True)
        for k in list(state):
            if k.startswith("model."):
                local_state[k[len("model."):]].copy_(state[k].to_local())
    if optimizer is not None:
        for k, (p, entry) in optim_targets.items():
            value = state[k].to_local()
            optimizer.state[p][entry] = value.clone()
    return {k[len(prefix):]: state[k] for k in rng_keys}


def read_full_tensors(path: str | os.PathLike[str], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """Offline, in one process: the full (single-process) tensors under ``prefix``, keys without it.

    This is the conversion of a sharded checkpoint to the single-process state dict; it holds the whole
    model, so run it where that fits (publishing, export).
    """
    meta = read_metadata(path)
    state = {k: torch.empty(tuple(md.size), dtype=md.properties.dtype)  # type: ignore[union-attr]
             for k, md in meta.state_dict_metadata.items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path} holds no tensors under {prefix!r}")
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process", category=UserWarning)
        dcp.load(state, storage_reader=SafeFileSystemReader(path), no_dist=True)
    return {k[len(prefix):]: v for k, v in state.items()}
