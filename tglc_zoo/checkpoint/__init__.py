"""Checkpoint I/O: safetensors weights, ``config.json``, model cards, atomic folders, sources.

Floor 1 of the package: this reads and writes files and resolves where they come from; it never
builds a model (``tglc_zoo.pretrained`` puts weights and models together).
"""
from ..errors import (
                      CheckpointError,
                      CheckpointNotFoundError,
                      ConfigError,
                      CorruptCheckpointError,
                      HashMismatchError,
                      UnsafeCheckpointError,
)
from .config import CONFIG_NAME, make_config, read_config, validate_config, write_config
from .folder import CHECKPOINT_FILES, write_checkpoint_folder
from .hf import HF_PREFIX, is_hf_repo_id, split_repo_id
from .legacy import load_legacy_state_dict
from .model_card import CARD_NAME, render_model_card
from .push import SyncResult, sync_folder, upload_checkpoint_folder
from .safetensors_io import (
                      WEIGHTS_NAME,
                      SafetensorsHeader,
                      TensorInfo,
                      load_weights,
                      read_header,
                      read_metadata_config,
                      save_weights,
)
from .sources import ResolvedCheckpoint, read_state_dict, resolve_source, tensor_shapes
from .url import cached_download, check_sha256, hash_prefix_of

__all__ = [
    "CARD_NAME", "CHECKPOINT_FILES", "CONFIG_NAME", "HF_PREFIX", "WEIGHTS_NAME",
    "CheckpointError", "CheckpointNotFoundError", "ConfigError", "CorruptCheckpointError", "HashMismatchError",
    "ResolvedCheckpoint", "SyncResult", "SafetensorsHeader", "TensorInfo", "UnsafeCheckpointError",
    "cached_download", "check_sha256", "hash_prefix_of", "is_hf_repo_id",
    "load_legacy_state_dict", "load_weights", "make_config", "read_config", "read_metadata_config",
    "read_header", "read_state_dict", "render_model_card", "resolve_source", "save_weights", "split_repo_id",
    "tensor_shapes",
    "sync_folder", "upload_checkpoint_folder", "validate_config", "write_checkpoint_folder", "write_config",
]
