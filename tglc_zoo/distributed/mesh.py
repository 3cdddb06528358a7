"""The 2-D device mesh of group × data parallelism: D replicas of an N-rank group-parallel model.

Global rank ``r`` of a world of ``D × N`` processes is group rank ``r % N`` of replica ``r // N``: the
group dimension is innermost, so the N ranks of one replica are consecutive — on one node when a node
holds at least N processes (``torchrun --nproc-per-node`` a multiple of N) — and carry the per-layer
all-gathers; only the gradient all-reduce of the data dimension, between rank ``k`` of every replica,
crosses nodes. With N = 2 and D = 2::

    replica 0: ranks 0, 1        data-parallel peers of group rank 0: ranks 0, 2
    replica 1: ranks 2, 3        data-parallel peers of group rank 1: ranks 1, 3

:func:`init_layout` builds the mesh's process groups itself (``new_group`` with the run's timeout: the
groups ``init_device_mesh`` makes would wait 30 minutes on a stalled peer) and wraps them in a
:class:`~torch.distributed.device_mesh.DeviceMesh` with dims ``("data", "group")`` — the same mesh
``init_device_mesh(device, (D, N), mesh_dim_names=("data", "group"))`` gives — which the sharded
checkpoints (:mod:`.sharded_checkpoint`) use to describe where each slice lives. The collectives
themselves stay hand-written (:mod:`.collectives`): DTensor's convolution rule does not know channel-split
grouped convolutions.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh

from ..errors import GroupParallelError

__all__ = ["MESH_DIMS", "ParallelLayout", "check_layout", "init_layout"]

MESH_DIMS = ("data", "group")


def check_layout(world_size: int, groups: int) -> tuple[int, int]:
    """``(D, N)`` for ``world_size`` processes and a model with ``groups`` = N; other sizes are an error."""
    if groups < 1 or world_size < 1 or world_size % groups:
        valid = ", ".join(str(groups * d) for d in range(1, 5))
        raise GroupParallelError(f"world size {world_size} is not a multiple of the model's groups={groups}: group "
                                 f"parallelism runs D replicas of {groups} processes; valid world sizes: "
                                 f"{valid}, ... (torchrun --nproc-per-node {groups}, or --nnodes K with "
                                 f"--nproc-per-node a multiple of {groups})")
    return world_size // groups, groups


@dataclass(frozen=True)
class ParallelLayout:
    """This process's place in the ``(data, group)`` mesh, and the mesh's process groups."""

    data: int                                  # D, replicas
    groups: int                                # N, group ranks per replica
    rank: int                                  # global rank
    group_pg: dist.ProcessGroup | None         # the N ranks of this replica (per-layer all-gathers)
    data_pg: dist.ProcessGroup | None          # rank k of every replica (gradient all-reduce)
    mesh: DeviceMesh | None = None

    @property
    def world_size(self) -> int:
        return self.data * self.groups

    @property
    def data_rank(self) -> int:
        """Which replica this process belongs to (its slice of every global batch)."""
        return self.rank // self.groups

    @property
    def group_rank(self) -> int:
        """Which channel group this process holds."""
        return self.rank % self.groups

    def replica_ranks(self, replica: int) -> list[int]:
        return [replica * self.groups + k for k in range(self.groups)]

    def data_peers(self, group_rank: int) -> list[int]:
        return [d * self.groups + group_rank for d in range(self.data)]

    def describe(self) -> str:
        lines = [f"mesh (data={self.data}, group={self.groups}), world size {self.world_size}; this process: "
                 f"rank {self.rank} = replica {self.data_rank}, group rank {self.group_rank}"]
        lines += [f"  replica {d}: ranks {self.replica_ranks(d)}" for d in range(self.data)]
        lines += [f"  gradient all-reduce of group rank {k}: ranks {self.data_peers(k)}" for k in range(self.groups)]
        return "\n".join(lines)


def init_layout(groups: int, *, device_type: str = "cpu", timeout: datetime.timedelta | None = None
                ) -> ParallelLayout:
    """Collective: the ``(D, N)`` mesh over the initialised default process group (every rank calls it)."""
    if not (dist.is_available() and dist.is_initialized()):
        raise GroupParallelError("the device mesh needs an initialised process group (torch.distributed."
                                 "init_process_group, or torchrun)")
    world, rank = dist.get_world_size(), dist.get_rank()
    data, n = check_layout(world, groups)
    group_pg = data_pg = None
    for d in range(data):  # every rank creates every group, in the same order
        pg = dist.new_group([d * n + k for k in range(n)], timeout=timeout)
        if d == rank // n:
            group_pg = pg
    for k in range(n):
        pg = dist.new_group([d * n + k for d in range(data)], timeout=timeout)
        if k == rank % n:
            data_pg = pg
    # a member gets its ProcessGroup (non-members get a sentinel, never kept here)
    assert isinstance(group_pg, dist.ProcessGroup) and isinstance(data_pg, dist.ProcessGroup)
    mesh = DeviceMesh.from_group([data_pg, group_pg], device_type,
                                 mesh=torch.arange(world).reshape(data, n), mesh_dim_names=MESH_DIMS)
    return ParallelLayout(data, n, rank, group_pg, data_pg, mesh)
