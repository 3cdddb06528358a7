"""Training: the paper's recipes, a loop with exact resume, multi-process runs, fine-tuning, publishing.

``train(TrainConfig(...))`` is the library entry point; ``tglc-train`` / ``scripts/train.py`` is its CLI.
Multi-process modes (``TrainConfig.parallel``) are :class:`tglc_zoo.distributed.ParallelMode` objects,
registered by name in :data:`tglc_zoo.distributed.PARALLEL_MODES` (``data`` and ``group`` built in).
"""
from ..distributed.modes import PARALLEL_MODES, ParallelMode, get_parallel_mode, register_parallel_mode
from ..errors import CheckpointError, ModelDatasetMismatchError, RunExistsError
from .checkpoint_dir import load_checkpoint
from .config import TrainConfig
from .finetune import FinetuneConfig, finetune, save_finetuned
from .recipes import RECIPES, Recipe, get_recipe
from .trainer import RunResult, train

__all__ = ["CheckpointError", "load_checkpoint", "TrainConfig", "RECIPES", "Recipe", "get_recipe", "PARALLEL_MODES",
           "ModelDatasetMismatchError", "ParallelMode", "RunExistsError", "RunResult", "get_parallel_mode",
           "register_parallel_mode", "train", "FinetuneConfig", "finetune", "save_finetuned"]
