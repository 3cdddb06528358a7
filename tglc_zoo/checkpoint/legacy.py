"""Legacy ``.pth`` / ``.bin`` state dicts, read only through ``torch.load(weights_only=True)``.

``weights_only=True`` uses torch's restricted unpickler: it rebuilds tensors and plain containers
and refuses every other global, so a pickle carrying a payload is rejected without running it.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError

LEGACY_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin")
# wrappers that training scripts commonly put around the state dict
_WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model", "model_state_dict")


def load_legacy_state_dict(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a tensor-only state dict from a legacy pickle checkpoint; nothing else is ever unpickled."""
    path = Path(path)
    if path.suffix not in LEGACY_SUFFIXES:
        raise CorruptCheckpointError(f"{path}: legacy checkpoints must end in one of {list(LEGACY_SUFFIXES)}")
    if not path.is_file():
        raise CheckpointNotFoundError(f"no weights file at {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _reason(e)
        if "GLOBAL" not in reason:
            raise CorruptCheckpointError(f"{path}: not a readable torch checkpoint ({reason})") from None
        raise UnsafeCheckpointError(f"{path}: refused to load: the pickle holds more than tensors and plain "
                                    f"containers ({reason}); nothing in it was executed") from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise CorruptCheckpointError(f"{path}: not a readable torch checkpoint ({e})") from None
    return _unwrap(obj, path)


def _reason(error: Exception) -> str:
    """The line of torch's weights-only error that names the refused object (not its advice)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    named = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln]
    return (named or lines or [type(error).__name__])[0].split(". Please use")[0]


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise CorruptCheckpointError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CorruptCheckpointError(f"{path}: state dict entries that are not tensors: {bad[:10]}")
    return dict(obj)
