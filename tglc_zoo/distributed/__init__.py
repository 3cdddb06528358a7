"""Group parallelism for GC/GC-2L models on ``torch.distributed`` (SPEC §3, the paper's Figure 2).

* :func:`group_parallel` — this rank's shard (:class:`GroupParallel`) of a model with ``groups`` = N.
* :mod:`.collectives` — the autograd Functions (all-gather / reduce-scatter) and byte counters.
* :mod:`.checkpoint` — split a full state dict into N per-rank safetensors files and merge them back.
* :mod:`.train_mode` — the ``--group-parallel`` mode of ``scripts/train.py`` and its checkpoint state.
* :mod:`.launch` — spawn N local gloo processes with a deadline, reporting every rank's error.
"""
from .checkpoint import load_rank_state_dict, merge_rank_files, save_rank_files, save_shard_files
from .collectives import CollectiveError, CommStats, gather_partial, gather_replicated, shard_replicated
from .group_parallel import GroupParallel, group_parallel
from .plan import SUPPORTED_CONV_TYPES, GroupParallelError, ShardPlan, make_plan
from .train_mode import gather_training_state, register_training_mode, scatter_training_state

__all__ = [
    "group_parallel", "GroupParallel", "GroupParallelError", "CollectiveError", "CommStats", "ShardPlan",
    "make_plan", "SUPPORTED_CONV_TYPES", "gather_partial", "gather_replicated", "shard_replicated",
    "save_rank_files", "save_shard_files", "load_rank_state_dict", "merge_rank_files",
    "gather_training_state", "scatter_training_state", "register_training_mode",
]
