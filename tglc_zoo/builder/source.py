"""Which checkpoint a load names: any source, a tag's Hub repo served by its in-repo mirror, ``pretrained=``.

:func:`resolve_checkpoint` is :func:`tglc_zoo.checkpoint.resolve_source` plus what only the weights
manifest knows: a Hub id that is the home of one of the zoo's tags (``tglc-zoo/<model>.<tag>``) loads
from the tag's in-repo mirror (``hub/``) when it exists, with the manifest's sha256 checked and no
network at all; without the mirror it comes from the Hub, checked against the same sha256, and a
failure names the tag and the network's own cause.

``pretrained`` may be ``True`` (the pretrained cfg's own source: a manifest tag, timm's
``local-dir:``/``hf-hub:`` prefixes, or ``pretrained_cfg_overlay=dict(file=...)``), any source, or an
already resolved checkpoint (:func:`resolve_pretrained`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..checkpoint import HF_PREFIX, WEIGHTS_NAME, ResolvedCheckpoint, is_hf_repo_id, resolve_source, split_repo_id
from ..checkpoint.hf import cached_hf_file
from ..checkpoint.sources import FOLDER_WEIGHTS, local_kind
from ..errors import CheckpointNotFoundError, ConfigError
from ..weights import load_manifest, tags_of

__all__ = ["resolve_checkpoint", "resolve_pretrained", "tag_of_repo", "weights_beside"]


def tag_of_repo(repo_id: str) -> str | None:
    """The pretrained tag (``<model>.<tag>``) whose Hub home is ``repo_id``, or ``None``."""
    return next((tag for tag, entry in load_manifest().items() if entry.get("hf_hub_id") == repo_id), None)


def _hub_tag(text: str, revision: str | None) -> tuple[str, str | None] | None:
    """``(tag, revision)`` when ``text`` spells a Hub id (not an existing path) whose repo is a tag's home."""
    if local_kind(Path(text).expanduser()) is not None or not is_hf_repo_id(text):
        return None
    if not text.startswith(HF_PREFIX) and Path(text).is_absolute():
        return None
    repo_id, revision = split_repo_id(text, revision)
    tag = tag_of_repo(repo_id)
    return (tag, revision) if tag is not None else None


def _not_reachable(tag: str, source: str, error: Exception, mirror: str | None) -> CheckpointNotFoundError:
    where = (f"its in-repo mirror {mirror} is not on this machine (a pip-installed package has no hub/ folder)"
             if mirror else "the manifest names no in-repo mirror for it")
    return CheckpointNotFoundError(
        f"{source} is the Hugging Face home of the pretrained tag {tag!r}, and {where}. {error} To fix: "
        f"tglc_zoo.create_model({tag!r}, pretrained=True) loads the tag wherever its weights are; download it "
        f"once while online (`huggingface-cli download {split_repo_id(source)[0]}`); or load from a clone of "
        "tglc_zoo, whose hub/ folder holds the weights")


def resolve_checkpoint(source: str | os.PathLike[str], *, revision: str | None = None,
                       cache_dir: str | os.PathLike[str] | None = None, local_files_only: bool | None = None,
                       sha256: str | None = None) -> ResolvedCheckpoint:
    """Locate any checkpoint source (see :func:`tglc_zoo.checkpoint.resolve_source`), with tags' Hub repos
    served by their in-repo mirror when it exists and no ``revision`` is asked for."""
    text = os.fspath(source)
    hub = _hub_tag(text, revision)
    if hub is None:
        return resolve_source(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                              sha256=sha256)
    tag, asked = hub
    entry = load_manifest()[tag]
    mirror = entry.get("file")
    if asked is None:  # the manifest's version of the tag: its mirror, or the Hub checked against its sha256
        if mirror and Path(mirror).is_dir():
            resolved = resolve_source(mirror, sha256=entry["sha256"])
            return dataclasses.replace(resolved, origin=f"{text} (the in-repo mirror of {tag}, {mirror})")
        sha256 = sha256 or entry["sha256"]
    try:
        return resolve_source(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                              sha256=sha256)
    except CheckpointNotFoundError as e:
        raise _not_reachable(tag, text, e, mirror) from None


def _source_from_cfg(variant: str, cfg: dict[str, Any]) -> str:
    """The weights location a pretrained cfg names: an existing local file or mirror first, then the Hub repo,
    then a URL (timm's order, with a mirror that is not on this machine skipped)."""
    if cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
        return HF_PREFIX + cfg["hf_hub_id"]
    file = cfg.get("file")
    if file and (Path(str(file)).exists() or not (cfg.get("hf_hub_id") or cfg.get("url"))):
        return str(file)
    if cfg.get("hf_hub_id"):
        return HF_PREFIX + cfg["hf_hub_id"]
    if cfg.get("url"):
        return str(cfg["url"])
    tags = tags_of(variant)
    raise ConfigError(f"no pretrained weights are available for {variant!r}; tags with weights: {tags or 'none'} "
                      "(see tglc_zoo.list_models(pretrained=True)); or pass pretrained=<folder, .safetensors file, "
                      "URL or Hugging Face repo id>")


def _manifest_sha256(variant: str, cfg: dict[str, Any], source: str) -> str | None:
    """The manifest's sha256 when ``source`` is the manifest's own file for the tag in ``cfg``."""
    entry = load_manifest().get(f"{variant}.{cfg.get('tag')}") if cfg.get("tag") else None
    if not entry:
        return None
    # the manifest's hash vouches for the manifest's own file only, not for any folder with that tag
    own = {str(entry.get("file")), str(entry.get("url")), HF_PREFIX + str(entry.get("hf_hub_id"))}
    return entry.get("sha256") if source in own else None


def resolve_pretrained(variant: str, pretrained: Any, cfg: dict[str, Any], *,
                       cache_dir: str | Path | None = None) -> ResolvedCheckpoint:
    """Locate the checkpoint that ``pretrained`` names for the architecture ``variant`` whose pretrained cfg
    is ``cfg`` (``True``: the source in ``cfg``; a tag's ``pretrained_cfg`` must already be resolved into it)."""
    if isinstance(pretrained, ResolvedCheckpoint):
        resolved = pretrained
    elif pretrained is True and cfg.get("source") == "hf-hub":  # timm's hf-hub: route, as from_pretrained takes it
        resolved = resolve_checkpoint(_source_from_cfg(variant, cfg), cache_dir=cache_dir)
    elif pretrained is True:
        source = _source_from_cfg(variant, cfg)
        try:
            resolved = resolve_source(source, cache_dir=cache_dir, sha256=_manifest_sha256(variant, cfg, source))
        except CheckpointNotFoundError as e:
            if not (source.startswith(HF_PREFIX) and cfg.get("tag")):
                raise
            tag = f"{variant}.{cfg['tag']}"
            raise CheckpointNotFoundError(
                f"pretrained tag {tag!r}: its weights live in the Hugging Face repo {source.removeprefix(HF_PREFIX)!r}"
                f", which could not be used. {e} To fix: download it once while online (unset HF_HUB_OFFLINE, or "
                f"`huggingface-cli download {source.removeprefix(HF_PREFIX)}`), point HF_ENDPOINT at a mirror that has "
                "it, or load from a clone of tglc_zoo, whose hub/ folder holds the weights") from None
    elif isinstance(pretrained, (str, Path)):
        resolved = resolve_checkpoint(str(pretrained), cache_dir=cache_dir)
    else:
        raise ConfigError(f"pretrained={pretrained!r} is not understood; valid choices: False, True, a tag of "
                          f"{variant!r}, or a folder, .safetensors file, URL or Hugging Face repo id")
    arch = (resolved.config or {}).get("architecture")
    if arch is not None and arch != variant:
        raise ConfigError(f"{resolved.origin} holds a {arch!r} checkpoint, not {variant!r}; load it with "
                          f"tglc_zoo.from_pretrained({resolved.origin!r}) or create_model({arch!r}, ...)")
    return resolved


def weights_beside(config_source: str | None, *, cache_dir: str | Path | None = None) -> ResolvedCheckpoint | None:
    """The weights beside a ``config.json`` that timm's ``local-dir:``/``hf-hub:`` routes read without them
    (``config_source``: its folder, or ``hf-hub:<repo>``): in the folder, or in the Hugging Face cache (never
    downloaded for this); ``None`` when there are none."""
    if config_source is None:
        return None
    if config_source.startswith(HF_PREFIX):
        repo_id, revision = split_repo_id(config_source)
        cached = cached_hf_file(repo_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir)
        return resolve_source(cached) if cached is not None else None
    folder = Path(config_source)
    return resolve_source(folder) if any((folder / name).is_file() for name in FOLDER_WEIGHTS) else None
