"""A checkpoint folder: ``config.json`` + ``model.safetensors`` (config also in its metadata) + ``README.md``."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..util.atomic import atomic_directory
from .config import CONFIG_NAME, validate_config, write_config
from .model_card import CARD_NAME
from .safetensors_io import WEIGHTS_NAME, save_weights

CHECKPOINT_FILES: tuple[str, ...] = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


def write_checkpoint_folder(directory: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor],
                            config: Mapping[str, Any], card: str) -> Path:
    """Write (or atomically replace) a checkpoint folder; return its absolute path."""
    config = validate_config(config, origin=f"config for {directory}")
    directory = Path(directory).absolute()
    try:
        with atomic_directory(directory, replaceable=CHECKPOINT_FILES) as tmp:
            save_weights(tmp / WEIGHTS_NAME, state_dict, config)
            write_config(tmp / CONFIG_NAME, config)
            (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    except FileExistsError as e:
        raise CheckpointError(str(e)) from None
    return directory
