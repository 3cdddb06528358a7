"""Where a checkpoint comes from: a folder, a weights file, a URL, or a Hugging Face repo.

:func:`resolve_source` turns any of them into local files plus the checkpoint config;
:func:`read_state_dict` reads the weights. Neither builds a model.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointNotFoundError, ConfigError, CorruptCheckpointError, HubFileNotFoundError
from .config import CONFIG_NAME, read_config
from .hf import HF_PREFIX, hf_file, is_hf_repo_id, split_repo_id
from .legacy import LEGACY_SUFFIXES, load_legacy_state_dict
from .safetensors_io import WEIGHTS_NAME, load_weights, read_header, read_metadata_config
from .url import cached_download, check_sha256, is_url

_logger = logging.getLogger(__name__)

# weights file names looked for in a folder, in order
FOLDER_WEIGHTS: tuple[str, ...] = (WEIGHTS_NAME, "pytorch_model.bin", "model.pth")
WEIGHTS_SUFFIXES: tuple[str, ...] = (".safetensors", *LEGACY_SUFFIXES)
# config fields that fix the architecture; config.json and the weights' metadata must agree on them
_STRUCTURAL: tuple[str, ...] = ("architecture", "num_classes", "num_features", "model_args")


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """Local files of a checkpoint.

    Attributes:
        weights: the weights file (``.safetensors`` or a legacy ``.pth``/``.bin``).
        config: the checkpoint config (``config.json``, else the safetensors metadata); ``None`` when
            the source carries none (a plain state dict).
        origin: the source as the user gave it, for messages and model cards.
    """

    weights: Path
    config: dict[str, Any] | None
    origin: str


def _merge_configs(json_cfg: dict[str, Any] | None, meta_cfg: dict[str, Any] | None,
                   origin: str) -> dict[str, Any] | None:
    if json_cfg is None or meta_cfg is None:
        return json_cfg or meta_cfg
    differ = [k for k in _STRUCTURAL if json_cfg.get(k) != meta_cfg.get(k)]
    if differ:
        detail = "; ".join(f"{k}: {json_cfg.get(k)!r} vs {meta_cfg.get(k)!r}" for k in differ)
        raise ConfigError(f"{origin}: {CONFIG_NAME} and the config in the weights' metadata disagree ({detail})")
    return json_cfg  # descriptive fields (labels, mean/std, ...) may be edited in config.json


def _from_file(path: Path, origin: str, json_cfg: dict[str, Any] | None = None) -> ResolvedCheckpoint:
    if path.suffix == ".safetensors":
        return ResolvedCheckpoint(path, _merge_configs(json_cfg, read_metadata_config(path), origin), origin)
    if path.suffix in LEGACY_SUFFIXES:
        return ResolvedCheckpoint(path, json_cfg, origin)
    raise CorruptCheckpointError(f"{origin}: unsupported weights file {path.name!r}; "
                                 f"valid suffixes: {list(WEIGHTS_SUFFIXES)}")


def _from_folder(folder: Path, origin: str) -> ResolvedCheckpoint:
    weights = next((folder / n for n in FOLDER_WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        present = sorted(p.name for p in folder.iterdir())
        raise CheckpointNotFoundError(f"{folder} holds no weights file; looked for {list(FOLDER_WEIGHTS)}, "
                                      f"found {present}")
    cfg_path = folder / CONFIG_NAME
    json_cfg = read_config(cfg_path) if cfg_path.is_file() else None
    return _from_file(weights, origin, json_cfg)


def _from_hf(source: str, revision: str | None, cache_dir: str | os.PathLike[str] | None,
             local_files_only: bool | None) -> ResolvedCheckpoint:
    repo_id, revision = split_repo_id(source, revision)
    kw: dict[str, Any] = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    weights = hf_file(repo_id, WEIGHTS_NAME, **kw)
    try:
        json_cfg = read_config(hf_file(repo_id, CONFIG_NAME, **kw))
    except CheckpointNotFoundError:
        json_cfg = None  # the weights' metadata still describes the checkpoint
    origin = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    return _from_file(weights, origin, json_cfg)


def resolve_source(source: str | os.PathLike[str], *, revision: str | None = None,
                   cache_dir: str | os.PathLike[str] | None = None,
                   local_files_only: bool | None = None, sha256: str | None = None) -> ResolvedCheckpoint:
    """Locate a checkpoint and its config.

    Args:
        source: a local folder, a weights file (``.safetensors``, or legacy ``.pth``/``.bin``), an
            ``https://``/``http://``/``file://`` URL of a weights file, or a Hugging Face repo id
            (``org/name``, ``hf-hub:org/name``, optionally ``@revision``). A local path wins over a
            repo id of the same spelling.
        revision: Hub branch, tag or commit (Hub sources only).
        cache_dir: cache folder (default: huggingface_hub's cache for repos, torch.hub's for URLs).
        local_files_only: never download; ``None`` keeps the libraries' defaults (``HF_HUB_OFFLINE``).
        sha256: expected sha256 of the weights file (a manifest entry's hash), checked for every route.
    """
    resolved = _resolve(source, revision, cache_dir, local_files_only, sha256)
    if sha256 is not None and not is_url(str(source)):  # cached_download checked URLs already
        check_sha256(resolved.weights, sha256=sha256, origin=resolved.origin)
    return resolved


def local_kind(path: Path) -> str | None:
    """``"folder"``, ``"file"`` or ``None`` (nothing there, or a name the OS cannot even look up)."""
    try:
        return "folder" if path.is_dir() else "file" if path.is_file() else None
    except OSError:  # e.g. ENAMETOOLONG for a 5,000-character "path"
        return None


def _resolve(source: str | os.PathLike[str], revision: str | None, cache_dir: str | os.PathLike[str] | None,
             local_files_only: bool | None, sha256: str | None) -> ResolvedCheckpoint:
    text = os.fspath(source)
    path = Path(text).expanduser()
    if not text.startswith(HF_PREFIX) and not is_url(text):
        kind = local_kind(path)
        if kind == "folder":
            return _from_folder(path, text)
        if kind == "file":
            return _from_file(path, text)
    if is_url(text):
        local = cached_download(text, cache_dir=cache_dir, sha256=sha256, local_files_only=bool(local_files_only))
        return _from_file(local, text)
    if text.startswith(HF_PREFIX) or (is_hf_repo_id(text) and not path.is_absolute()):
        return _from_hf(text, revision, cache_dir, local_files_only)
    raise CheckpointNotFoundError(
        f"no checkpoint at {text!r}: it is not an existing folder or weights file, not an https://, http:// or "
        f"file:// URL, and not a Hugging Face repo id ('org/name' or 'hf-hub:org/name')")


def read_source_config(source: str | os.PathLike[str], *, revision: str | None = None,
                       cache_dir: str | os.PathLike[str] | None = None,
                       local_files_only: bool | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(config, origin)`` of a folder or Hub repo, without fetching its weights when ``config.json`` exists
    (timm's ``local-dir:``/``hf-hub:`` routes read the same file); else the weights' metadata config."""
    text = os.fspath(source)
    if text.startswith(HF_PREFIX) or (is_hf_repo_id(text) and local_kind(Path(text).expanduser()) is None):
        repo_id, revision = split_repo_id(text, revision)
        origin = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
        try:
            path = hf_file(repo_id, CONFIG_NAME, revision=revision,
                           cache_dir=None if cache_dir is None else Path(cache_dir), local_files_only=local_files_only)
        except HubFileNotFoundError:
            pass  # the weights' metadata may still describe the checkpoint
        else:
            return read_config(path), origin
    elif local_kind(Path(text).expanduser()) == "folder" and (Path(text).expanduser() / CONFIG_NAME).is_file():
        return read_config(Path(text).expanduser() / CONFIG_NAME), text
    resolved = resolve_source(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    return resolved.config, resolved.origin


def tensor_shapes(resolved: ResolvedCheckpoint) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape: from the safetensors header without reading data (a legacy file is read)."""
    if resolved.weights.suffix == ".safetensors":
        return {k: info.shape for k, info in read_header(resolved.weights).tensors.items()}
    return {k: tuple(v.shape) for k, v in load_legacy_state_dict(resolved.weights, map_location="meta").items()}


def read_state_dict(resolved: ResolvedCheckpoint, *,
                    map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a resolved checkpoint (legacy pickles only via ``weights_only=True``)."""
    if resolved.weights.suffix == ".safetensors":
        return load_weights(resolved.weights, map_location=map_location)
    _logger.info("reading legacy checkpoint %s with torch.load(weights_only=True)", resolved.weights)
    return load_legacy_state_dict(resolved.weights, map_location=map_location)
