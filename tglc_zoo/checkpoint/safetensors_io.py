"""``model.safetensors``: the weights, with the checkpoint config in the file's metadata.

The header is checked before safetensors reads the file, so a truncated download, a pickle or a
zip renamed to ``.safetensors`` fails with a message saying which of those it is.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointNotFoundError, CorruptCheckpointError
from .config import config_from_json, config_to_json

WEIGHTS_NAME = "model.safetensors"
METADATA_KEY = "tglc_zoo.config"
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_PICKLE_MAGIC = b"\x80"
_ZIP_MAGIC = b"PK\x03\x04"


def save_weights(path: str | Path, state_dict: Mapping[str, torch.Tensor],
                 config: Mapping[str, Any] | None = None) -> None:
    """Write ``state_dict`` (moved to CPU, made contiguous, shared storage un-shared) to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int | torch.SymInt]] = set()
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(value).__name__}, not a tensor")
        t = value.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if t.numel() and key in seen:
            t = t.clone()
        seen.add(key)
        tensors[name] = t
    metadata = {"format": "pt"}
    if config is not None:
        metadata[METADATA_KEY] = config_to_json(config)
    save_file(tensors, os.fspath(path), metadata=metadata)
    # safetensors creates the file owner-only (0600); published weights are meant to be readable
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _check_header(path: Path) -> dict[str, Any]:
    """Validate the safetensors framing of ``path``; return its parsed JSON header."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(f"{path}: {size} bytes is too short for a safetensors file "
                                         "(truncated or empty)")
        if head.startswith(_ZIP_MAGIC):
            raise CorruptCheckpointError(f"{path}: not a safetensors file but a zip archive (torch.save format); "
                                         "legacy state dicts load only from a .pth/.bin file, with weights_only=True")
        if head.startswith(_PICKLE_MAGIC):
            raise CorruptCheckpointError(f"{path}: not a safetensors file but a pickle; it was not unpickled")
        n = int.from_bytes(head, "little")
        if n > _HEADER_LIMIT or n < 2:
            raise CorruptCheckpointError(f"{path}: not a safetensors file (header length field reads {n})")
        if 8 + n > size:
            raise CorruptCheckpointError(f"{path}: truncated safetensors file: the header declares {n} bytes "
                                         f"but only {size - 8} follow the length field")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptCheckpointError(f"{path}: not a safetensors file (its header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    data_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            data_end = max(data_end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CorruptCheckpointError(f"{path}: malformed safetensors header entry {name!r}: {info!r}") from None
    available = size - 8 - n
    if data_end > available:
        raise CorruptCheckpointError(f"{path}: truncated safetensors file: its tensors need {data_end} bytes "
                                     f"of data but the file holds {available}")
    return header


def read_metadata_config(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint config stored in the file's metadata, or ``None`` for a plain safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no weights file at {path}")
    metadata = _check_header(path).get("__metadata__") or {}
    text = metadata.get(METADATA_KEY)
    return None if text is None else config_from_json(text, origin=f"{path} (safetensors metadata)")


def load_weights(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file onto ``map_location``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no weights file at {path}")
    _check_header(path)
    try:
        return load_file(os.fspath(path), device=str(torch.device(map_location)))
    except SafetensorError as e:
        raise CorruptCheckpointError(f"{path}: unreadable safetensors file ({e})") from None
