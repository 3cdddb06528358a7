"""The weights manifest: every pretrained tag that ships with (or is published for) tglc_zoo."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

MANIFEST = "manifest.json"


def load_manifest() -> dict[str, dict[str, Any]]:
    """``{"name.tag": entry}`` as stored in ``tglc_zoo/weights/manifest.json``."""
    text = resources.files(__package__).joinpath(MANIFEST).read_text(encoding="utf-8")
    return json.loads(text).get("weights", {})


def manifest_cfgs() -> dict[str, dict[str, Any]]:
    """Pretrained configs (timm fields) of the manifest's tags."""
    return {tag: dict(entry.get("pretrained_cfg", {})) for tag, entry in load_manifest().items()}
