"""The weights manifest: every pretrained tag that ships with (or is published for) tglc_zoo.

``tglc_zoo/weights/manifest.json`` holds ``{"format": 1, "weights": {"<name>.<tag>": entry}}`` with ::

    {"file": "hub/wrn16_4_gc2l_n4.fmnist",            # repo-relative checkpoint folder or file, and/or
     "url": "https://.../model-<sha256 prefix>.safetensors", "hf_hub_id": "org/name",
     "sha256": "<sha256 of model.safetensors>",
     "dataset": "fashion_mnist", "metrics": {"top1": 91.2, ...}, "recipe": "<how it was trained>",
     "pretrained_cfg": {"input_size": [1, 28, 28], "mean": [...], "std": [...], "num_classes": 10,
                        "label_names": [...], ...}}

Only entries whose weights exist are listed: a ``file`` present on disk, or a ``url`` / ``hf_hub_id``.
More manifests (same format, ``file`` relative to the manifest) can be added with the environment
variable ``TGLC_ZOO_WEIGHTS_MANIFEST`` (paths separated by ``os.pathsep``), read at import of tglc_zoo.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_ENV = "TGLC_ZOO_WEIGHTS_MANIFEST"
REQUIRED: tuple[str, ...] = ("sha256", "dataset", "metrics", "recipe", "pretrained_cfg")
SOURCES: tuple[str, ...] = ("file", "url", "hf_hub_id")
_REPO_ROOT = Path(__file__).resolve().parents[2]


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


def load_manifest(*, include_unavailable: bool = False) -> dict[str, dict[str, Any]]:
    """``{"name.tag": entry}`` from the shipped manifest and those named by ``TGLC_ZOO_WEIGHTS_MANIFEST``.

    ``file`` fields come back as absolute paths; entries whose weights do not exist are left out unless
    ``include_unavailable``.
    """
    text = resources.files(__package__).joinpath(MANIFEST).read_text(encoding="utf-8")
    entries = _entries(text, MANIFEST, _REPO_ROOT)
    for extra in filter(None, os.environ.get(MANIFEST_ENV, "").split(os.pathsep)):
        path = Path(extra)
        entries.update(_entries(path.read_text(encoding="utf-8"), str(path), path.parent))
    return {t: e for t, e in entries.items() if include_unavailable or _available(e)}


def manifest_cfgs() -> dict[str, dict[str, Any]]:
    """Pretrained configs (timm fields, with the weights' ``file``/``url``/``hf_hub_id``) of the manifest's tags."""
    return {tag: {**entry["pretrained_cfg"], **{k: entry[k] for k in SOURCES if entry.get(k)}}
            for tag, entry in load_manifest().items()}
