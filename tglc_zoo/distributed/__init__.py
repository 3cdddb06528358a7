"""Running models over several processes: group parallelism (the paper's section 3.2, Figure 2) and the
parallel modes of the trainer.

* :func:`group_parallel` — this rank's shard (:class:`GroupParallel`) of a model with ``groups`` = N: a
  tglc_zoo model or any converted CNN, traced (:mod:`.trace`), every op placed and checked
  (:mod:`.ops`, :mod:`.placement`), split (:mod:`.plan`, :mod:`.shard`) and run as the rank's graph
  (:mod:`.graph_shard`).
* :mod:`.collectives` — the autograd Functions (all-gather / reduce-scatter) and byte counters.
* :mod:`.checkpoint` — split a full state dict into N per-rank safetensors files and merge them back.
* :mod:`.training_state` — a shard's model and optimizer state in single-process layout.
* :mod:`.modes` — :class:`ParallelMode`, the trainer's contract, with the ``data`` and ``group`` modes.
* :mod:`.context` — joining torchrun's process group.
* :mod:`.launch` — spawn N local gloo processes with a deadline, reporting every rank's error.
"""
from ..errors import CollectiveError, GroupParallelError
from .checkpoint import load_rank_state_dict, merge_rank_files, save_rank_files, save_shard_files
from .collectives import CommStats, gather_partial, gather_replicated, shard_replicated
from .context import DistContext, setup_distributed, teardown_distributed
from .group_parallel import GroupParallel, group_parallel
from .modes import PARALLEL_MODES, DataParallelMode, GroupMode, ParallelMode, get_parallel_mode, register_parallel_mode
from .plan import SUPPORTED_CONV_TYPES, ShardPlan, make_plan
from .training_state import gather_training_state, localize_optimizer_state, scatter_training_state

__all__ = [
    "group_parallel", "GroupParallel", "GroupParallelError", "CollectiveError", "CommStats", "ShardPlan",
    "make_plan", "SUPPORTED_CONV_TYPES", "gather_partial", "gather_replicated", "shard_replicated",
    "save_rank_files", "save_shard_files", "load_rank_state_dict", "merge_rank_files",
    "gather_training_state", "scatter_training_state", "localize_optimizer_state",
    "ParallelMode", "DataParallelMode", "GroupMode", "PARALLEL_MODES", "register_parallel_mode", "get_parallel_mode",
    "DistContext", "setup_distributed", "teardown_distributed",
]
