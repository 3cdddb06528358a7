"""The weights manifest: every pretrained tag of tglc_zoo, with its canonical home on the Hugging Face Hub.

``tglc_zoo/weights/manifest.json`` holds ``{"format": 1, "hub_org": "tglc-zoo", "weights": {"<name>.<tag>":
entry}}`` with ::

    {"hf_hub_id": "tglc-zoo/wrn16_2_gc2l_n8.fmnist",  # the tag's home: one Hub repo per tag
     "file": "hub/wrn16_2_gc2l_n8.fmnist",            # the in-repo mirror (clones and torch.hub), and/or
     "url": "https://.../model-<sha256 prefix>.safetensors",
     "sha256": "<sha256 of model.safetensors>",      # checked whichever way the file came
     "dataset": "fashion_mnist", "metrics": {"top1": 91.2, ...}, "recipe": "<how it was trained>",
     "pretrained_cfg": {"input_size": [1, 28, 28], "mean": [...], "std": [...], "num_classes": 10,
                        "label_names": [...], ...}}

Only entries whose weights exist are listed: a ``file`` present on disk, or a ``url`` / ``hf_hub_id``.
Resolution order (``tglc_zoo.builder.source``): the local mirror when it exists (a clone, or torch.hub's copy
of the repository), otherwise the Hub repo through ``huggingface_hub`` (its cache, ``revision``,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_HOME``) — so a pip-installed wheel, which holds no weights,
downloads them on first use.
More manifests (same format, ``file`` relative to the manifest) can be added with the environment
variable ``TGLC_ZOO_WEIGHTS_MANIFEST`` (paths separated by ``os.pathsep``). The manifests are read
once, when tglc_zoo is imported (the registry declares the tags to timm then); a manifest that
cannot be read is skipped with a warning that names it.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_ENV = "TGLC_ZOO_WEIGHTS_MANIFEST"
REQUIRED: tuple[str, ...] = ("sha256", "dataset", "metrics", "recipe", "pretrained_cfg")
SOURCES: tuple[str, ...] = ("file", "url", "hf_hub_id")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_logger = logging.getLogger(__name__)


def _entries(text: str, origin: str, base: Path) -> dict[str, dict[str, Any]]:
    try:
        weights = json.loads(text).get("weights", {})
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"weights manifest {origin} is not a JSON object with 'weights' ({e})") from None
    out = {}
    for tag, entry in weights.items():
        if "." not in tag:
            raise ValueError(f"weights manifest {origin}: {tag!r} is not a '<model>.<tag>' name")
        missing = [k for k in REQUIRED if k not in entry]
        if missing or not any(entry.get(k) for k in SOURCES):
            raise ValueError(f"weights manifest {origin}: entry {tag!r} lacks {missing or 'a source'}; "
                             f"entries need {list(REQUIRED)} and one of {list(SOURCES)}")
        entry = dict(entry)
        if entry.get("file"):
            entry["file"] = str((base / entry["file"]).resolve())
        out[tag] = entry
    return out


def _available(entry: dict[str, Any]) -> bool:
    return bool(entry.get("url") or entry.get("hf_hub_id") or (entry.get("file") and Path(entry["file"]).exists()))


@functools.cache
def _read_all() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath(MANIFEST).read_text(encoding="utf-8")
    entries = _entries(text, MANIFEST, _REPO_ROOT)
    for extra in filter(None, os.environ.get(MANIFEST_ENV, "").split(os.pathsep)):
        path = Path(extra)
        try:
            entries.update(_entries(path.read_text(encoding="utf-8"), str(path), path.parent))
        except (OSError, ValueError) as e:
            _logger.warning("%s names the weights manifest %s, which cannot be used and is skipped: %s",
                            MANIFEST_ENV, path, e)
    return entries


def load_manifest(*, include_unavailable: bool = False) -> dict[str, dict[str, Any]]:
    """``{"name.tag": entry}`` from the shipped manifest and those named by ``TGLC_ZOO_WEIGHTS_MANIFEST``.

    ``file`` fields come back as absolute paths; entries whose weights do not exist are left out unless
    ``include_unavailable``. Read once per process.
    """
    entries = _read_all()
    return {t: dict(e) for t, e in entries.items() if include_unavailable or _available(e)}


def manifest_cfgs() -> dict[str, dict[str, Any]]:
    """Pretrained configs (timm fields, with the weights' ``hf_hub_id``/``url`` and — when the local mirror
    exists — ``file``) of the manifest's tags. timm's order of precedence then tries the mirror first."""
    out = {}
    for tag, entry in load_manifest().items():
        sources = {k: entry[k] for k in SOURCES if entry.get(k)}
        if "file" in sources and not Path(sources["file"]).exists():
            del sources["file"]
        out[tag] = {**entry["pretrained_cfg"], **sources}
    return out


def hub_org() -> str:
    """The Hugging Face organisation that holds the zoo's repos (one per tag)."""
    text = resources.files(__package__).joinpath(MANIFEST).read_text(encoding="utf-8")
    return str(json.loads(text).get("hub_org", "tglc-zoo"))


def tags_of(model: str) -> list[str]:
    """The ``name.tag`` entries of ``model`` that have weights, in manifest order (the first is what
    ``pretrained=True`` on the untagged name loads)."""
    return [t for t in load_manifest() if t.rpartition(".")[0] == model]
