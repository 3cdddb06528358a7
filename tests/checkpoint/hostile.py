"""Hostile checkpoint folders: about 1 KB each, whose config asks for far more than their weights hold.

Each folder is a ``config.json`` and a ``model.safetensors`` holding one 1-element tensor and the same
config in its metadata, as an attacker would write them (the two agree, so only the guard stands in
the way). Imported by name: ``tests/checkpoint`` is on ``sys.path`` under pytest, and the resource
test's subprocess puts it there.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

ZOO_NAME = "wrn16_2_gc2l_n2"
_ZOO: dict[str, Any] = {
    "architecture": ZOO_NAME, "num_classes": 3, "num_features": 128, "global_pool": "avg",
    "model_args": {"conv_type": "gc2l", "groups": 2, "in_chans": 1},
    "pretrained_cfg": {"architecture": ZOO_NAME, "input_size": [1, 32, 32], "interpolation": "bilinear",
                       "crop_pct": 1.0, "mean": [0.47], "std": [0.25], "num_classes": 3, "pool_size": [8, 8],
                       "first_conv": "stem.conv", "classifier": "fc"}}
_GROUPED: dict[str, Any] = {
    "architecture": "tglc_grouped", "num_classes": 3, "num_features": 512, "global_pool": "avg",
    "model_args": {"base": "resnet10t", "base_args": {"num_classes": 3, "in_chans": 1}, "conv_type": "gc2l",
                   "groups": 2, "layers": ["layer1.0.conv1", "layer1.0.conv2"], "conv_kwargs": {}},
    "pretrained_cfg": {"architecture": "tglc_grouped", "input_size": [1, 32, 32], "interpolation": "bicubic",
                       "crop_pct": 0.875, "mean": [0.485], "std": [0.229], "num_classes": 3,
                       "first_conv": "conv1.0", "classifier": "fc"}}


def write_folder(path: Path, config: dict[str, Any]) -> Path:
    """``config.json`` + a 1-element ``model.safetensors`` carrying the same config."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    save_file({"w": torch.zeros(1)}, str(path / "model.safetensors"),
              metadata={"format": "pt", "tglc_zoo.config": json.dumps(config)})
    return path


def zoo(num_classes: int | None = None, **model_args: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(_ZOO)
    if num_classes is not None:
        cfg["num_classes"] = cfg["pretrained_cfg"]["num_classes"] = num_classes
    cfg["model_args"].update(model_args)
    return cfg


def grouped(base: str | None = None, **base_args: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(_GROUPED)
    if base is not None:
        cfg["model_args"].update(base=base, layers=[], base_args={})
    cfg["model_args"]["base_args"].update(base_args)
    return cfg


# name -> (config, what refuses it: a regex of the error message)
OVER_LIMIT = "refused before anything was allocated"
OVER_WEIGHTS = "checkpoint does not fit"
HOSTILE: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "zoo_classes_1e9": (lambda: zoo(num_classes=10**9), OVER_LIMIT),
    "zoo_classes_6e6": (lambda: zoo(num_classes=6 * 10**6), OVER_WEIGHTS),
    "zoo_in_chans_1e8": (lambda: zoo(in_chans=10**8), OVER_LIMIT),
    "grouped_classes_1.5e6": (lambda: grouped(num_classes=1_500_000), OVER_WEIGHTS),
    "grouped_in_chans_1e7": (lambda: grouped(in_chans=10**7), OVER_WEIGHTS),
    "grouped_vit_depth_1e6": (lambda: grouped("vit_tiny_patch16_224", depth=10**6), OVER_LIMIT),
    "grouped_vit_gigantic": (lambda: grouped("vit_gigantic_patch14_224"), OVER_WEIGHTS),
    "grouped_checkpoint_path": (lambda: grouped(checkpoint_path="/nonexistent/weights.pth"),
                                r"base_args \['checkpoint_path'\] make the base model load weights.*trust_base=True"),
    "grouped_hf_hub_base": (lambda: grouped("hf-hub:evil/base"),
                            r"base 'hf-hub:evil/base' is a remote or local model.*trust_base=True"),
}


def make_all(root: Path) -> dict[str, Path]:
    """Every folder of :data:`HOSTILE` under ``root``."""
    return {name: write_folder(root / name, make()) for name, (make, _) in HOSTILE.items()}


def self_referencing(root: Path) -> Path:
    """A converted checkpoint whose base is ``local-dir:`` of its own folder."""
    folder = root / "self"
    return write_folder(folder, grouped(f"local-dir:{folder}"))


def huge_config(root: Path, size: int = 3 << 30) -> Path:
    """A folder whose ``config.json`` is ``size`` bytes (sparse: it takes no disk space)."""
    folder = write_folder(root / "huge_config", zoo())
    with (folder / "config.json").open("r+b") as f:
        f.truncate(size)
    return folder
