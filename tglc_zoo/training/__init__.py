"""Training: the paper's recipes, a loop with exact resume, data-parallel runs, publishing.

``train(TrainConfig(...))`` is the library entry point; ``tglc-train`` / ``scripts/train.py`` is its CLI.
"""
from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig
from .recipes import RECIPES, Recipe, get_recipe
from .trainer import (PARALLEL_MODES, ModelDatasetMismatchError, ParallelMode, RunExistsError, RunResult,
                      register_parallel_mode, train)

__all__ = ["CheckpointError", "load_checkpoint", "TrainConfig", "RECIPES", "Recipe", "get_recipe", "PARALLEL_MODES",
           "ModelDatasetMismatchError", "ParallelMode", "RunExistsError", "RunResult", "register_parallel_mode",
           "train"]
