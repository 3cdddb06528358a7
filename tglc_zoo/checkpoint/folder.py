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
from .model_card import CARD_NAME, LIBRARY_NAME
from .safetensors_io import WEIGHTS_NAME, save_weights

CHECKPOINT_FILES: tuple[str, ...] = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


def is_own_file(path: Path) -> bool:
    """A file a checkpoint folder may replace: its weights, its config, and a model card tglc_zoo wrote
    (a user's own README.md is never replaced)."""
    if path.name == CARD_NAME:
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            return False
        return head.startswith("---") and f"library_name: {LIBRARY_NAME}" in head.split("\n---", 1)[0]
    return path.name in (CONFIG_NAME, WEIGHTS_NAME) and path.is_file()


def write_checkpoint_folder(directory: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor],
                            config: Mapping[str, Any], card: str) -> Path:
    """Write (or atomically replace) a checkpoint folder; return its absolute path.

    An existing folder is replaced only when it holds nothing but a checkpoint's own files
    (:func:`is_own_file`); a user's files (their README.md included), the working directory and a
    file in the way are refused. A symlink to a checkpoint folder keeps pointing at the new one.
    """
    config = validate_config(config, origin=f"config for {directory}")
    directory = Path(directory).absolute()
    try:
        with atomic_directory(directory, replaceable=is_own_file) as tmp:
            save_weights(tmp / WEIGHTS_NAME, state_dict, config)
            write_config(tmp / CONFIG_NAME, config)
            (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    except FileExistsError as e:
        raise CheckpointError(str(e)) from None
    return directory
