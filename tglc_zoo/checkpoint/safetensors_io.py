"""``model.safetensors``: the weights, with the checkpoint config in the file's metadata.

The header is checked before safetensors reads the file (:func:`read_header`), so a truncated
download, a pickle or a zip renamed to ``.safetensors`` fails with a message saying which of those it
is, and the tensors' dtypes and shapes are known before any memory is allocated for them.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointNotFoundError, CorruptCheckpointError
from .config import config_from_json, config_to_json
from .json_limit import check_json_size

WEIGHTS_NAME = "model.safetensors"
METADATA_KEY = "tglc_zoo.config"
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_ZIP_MAGIC = b"PK\x03\x04"
# bytes per element of every dtype the safetensors format defines
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
                "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
                "C64": 8}
_FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"})


def save_weights(path: str | Path, state_dict: Mapping[str, torch.Tensor],
                 config: Mapping[str, Any] | None = None, extra_metadata: Mapping[str, str] | None = None) -> None:
    """Write ``state_dict`` (moved to CPU, made contiguous, shared storage un-shared) to ``path``.

    ``config`` goes into the file's metadata as JSON; ``extra_metadata`` adds string entries beside it
    (the per-rank files of group parallelism record their rank there).
    """
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
    metadata = {**(extra_metadata or {}), "format": "pt"}
    if config is not None:
        metadata[METADATA_KEY] = config_to_json(config)
    save_file(tensors, os.fspath(path), metadata=metadata)
    # safetensors creates the file owner-only (0600); published weights are meant to be readable
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header declares it (read without loading any data)."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def is_floating(self) -> bool:
        return self.dtype in _FLOAT_DTYPES


@dataclass(frozen=True)
class SafetensorsHeader:
    """The validated header of a safetensors file: every tensor's dtype and shape, and the metadata."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def _diagnose(path: Path, head: bytes, why: str) -> CorruptCheckpointError:
    """What a file that is not valid safetensors is instead (zip, pickle, something else)."""
    if head.startswith(_ZIP_MAGIC):
        return CorruptCheckpointError(f"{path}: not a safetensors file but a zip archive (torch.save format); "
                                      "legacy state dicts load only from a .pth/.bin file, with weights_only=True")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return CorruptCheckpointError(f"{path}: not a safetensors file but a pickle; it was not unpickled")
    return CorruptCheckpointError(f"{path}: not a safetensors file ({why})")


def _entry(path: Path, name: str, info: Any) -> tuple[TensorInfo, int, int]:
    bad = CorruptCheckpointError(f"{path}: malformed safetensors header entry {name!r}: {str(info)[:200]}")
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise bad
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if (dtype not in _DTYPE_BYTES or not isinstance(shape, list) or len(shape) > 64
            or not all(type(d) is int and d >= 0 for d in shape)
            or not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)):
        raise bad
    begin, end = offsets
    numel = 1
    for d in shape:
        numel *= d
    if not 0 <= begin <= end or end - begin != numel * _DTYPE_BYTES[dtype]:
        raise CorruptCheckpointError(f"{path}: safetensors header entry {name!r} declares {dtype} {shape} "
                                     f"({numel * _DTYPE_BYTES[dtype]} bytes) at offsets {offsets}")
    return TensorInfo(dtype, tuple(shape)), begin, end


def read_header(path: str | Path) -> SafetensorsHeader:
    """Validate the safetensors framing of ``path`` and return its header (no tensor data is read).

    The 8-byte length field is read as safetensors defines it first; only a file that does not frame
    a JSON header is diagnosed as a zip archive, a pickle or something else. Every entry must declare a
    known dtype, a shape and offsets that match it and lie within the file; the metadata must map
    strings to strings.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no weights file at {path}")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(f"{path}: {size} bytes is too short for a safetensors file "
                                         "(truncated or empty)")
        n = int.from_bytes(head, "little")
        if n < 2 or n > _HEADER_LIMIT:
            raise _diagnose(path, head, f"header length field reads {n}")
        if 8 + n > size:
            first = f.read(1)
            if first == b"{":
                raise CorruptCheckpointError(f"{path}: truncated safetensors file: the header declares {n} bytes "
                                             f"but only {size - 8} follow the length field")
            raise _diagnose(path, head, f"header length field reads {n}, beyond the file's {size} bytes")
        check_json_size(n, str(path), "safetensors header")
        raw = f.read(n)
    if not raw.startswith(b"{"):
        raise _diagnose(path, head, "no JSON header after the length field")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CorruptCheckpointError(f"{path}: not a safetensors file (its header is not JSON: "
                                     f"{type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise CorruptCheckpointError(f"{path}: malformed safetensors metadata: it must map strings to strings, "
                                     f"got {str(metadata)[:200]}")
    tensors: dict[str, TensorInfo] = {}
    spans = []
    for name, info in header.items():
        tensors[name], begin, end = _entry(path, name, info)
        spans.append((begin, end, name))
    available = size - 8 - n
    spans.sort()
    for (_, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise CorruptCheckpointError(f"{path}: safetensors tensors {n0!r} and {n1!r} overlap")
    data_end = spans[-1][1] if spans else 0
    if data_end > available:
        raise CorruptCheckpointError(f"{path}: truncated safetensors file: its tensors need {data_end} bytes "
                                     f"of data but the file holds {available}")
    return SafetensorsHeader(tensors, dict(metadata))


def read_metadata_config(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint config stored in the file's metadata, or ``None`` for a plain safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no weights file at {path}")
    text = read_header(path).metadata.get(METADATA_KEY)
    return None if text is None else config_from_json(text, origin=f"{path} (safetensors metadata)")


def load_weights(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file onto ``map_location``."""
    path = Path(path)
    read_header(path)
    try:
        return load_file(os.fspath(path), device=str(torch.device(map_location)))
    except SafetensorError as e:
        raise CorruptCheckpointError(f"{path}: unreadable safetensors file ({e})") from None
