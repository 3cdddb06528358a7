"""``config.json`` in timm's layout: what a checkpoint is, so it can be rebuilt without code.

::

    {"architecture": "wrn16_4_gc2l_n4", "num_classes": 10, "num_features": 256, "global_pool": "avg",
     "model_args": {"conv_type": "gc2l", "groups": 4, "in_chans": 1, ...},
     "pretrained_cfg": {"input_size": [1, 28, 28], "mean": [...], "std": [...], "first_conv": "stem.conv",
                        "classifier": "fc", "label_names": [...], ...}}

The same JSON text is stored in the safetensors metadata (:data:`METADATA_KEY`), so a lone
``model.safetensors`` file describes itself.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointNotFoundError, ConfigError
from .json_limit import check_json_size

CONFIG_NAME = "config.json"
REQUIRED_KEYS: tuple[str, ...] = (
    "architecture", "num_classes", "num_features", "global_pool", "model_args", "pretrained_cfg",
)
# where the weights were loaded *from* is not part of what they are: never written into a new checkpoint
LOCATION_KEYS: tuple[str, ...] = ("file", "url", "hf_hub_id", "hf_hub_filename", "source", "state_dict")
# pretrained_cfg fields that timm keeps as tuples; JSON turns them into lists
_TUPLE_KEYS: tuple[str, ...] = ("input_size", "test_input_size", "min_input_size", "mean", "std", "pool_size")


def make_config(*, architecture: str, num_classes: int, num_features: int, global_pool: str,
                model_args: Mapping[str, Any], pretrained_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Assemble a config dict (location fields of ``pretrained_cfg`` dropped) and validate it."""
    cfg = {k: v for k, v in pretrained_cfg.items() if k not in LOCATION_KEYS}
    cfg.update(architecture=architecture, num_classes=num_classes)
    config = dict(architecture=architecture, num_classes=num_classes, num_features=num_features,
                  global_pool=global_pool, model_args=dict(model_args), pretrained_cfg=cfg)
    return validate_config(config, origin="make_config()")


def validate_config(config: Any, *, origin: str) -> dict[str, Any]:
    """Check required fields and types; return a copy with timm's tuple fields as tuples."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{origin}: the config must be a JSON object, got {type(config).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"{origin}: config is missing {missing}; a checkpoint config needs {list(REQUIRED_KEYS)}")
    if not isinstance(config["architecture"], str) or not config["architecture"]:
        raise ConfigError(f"{origin}: 'architecture' must be a non-empty string, got {config['architecture']!r}")
    for key in ("num_classes", "num_features"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{origin}: {key!r} must be a non-negative integer, got {value!r}")
    for key in ("model_args", "pretrained_cfg"):
        if not isinstance(config[key], Mapping):
            raise ConfigError(f"{origin}: {key!r} must be a JSON object, got {config[key]!r}")
    _check_pretrained_cfg(config["pretrained_cfg"], origin)
    if not all(isinstance(k, str) for k in config["model_args"]):
        raise ConfigError(f"{origin}: 'model_args' keys must be strings, got {list(config['model_args'])[:10]}")
    out = dict(config)
    out["model_args"] = dict(config["model_args"])
    out["pretrained_cfg"] = {k: tuple(v) if k in _TUPLE_KEYS and isinstance(v, list) else v
                             for k, v in config["pretrained_cfg"].items()}
    return out


def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_CFG_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "input_size": (lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_int(x, 1) for x in v),
                   "three positive integers (channels, height, width)"),
    "test_input_size": (lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) == 3
                                                and all(_is_int(x, 1) for x in v)), "three positive integers"),
    "min_input_size": (lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) == 3
                                               and all(_is_int(x, 1) for x in v)), "three positive integers"),
    "mean": (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_number(x) for x in v),
             "a non-empty list of finite numbers"),
    "std": (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_number(x) and x > 0 for x in v),
            "a non-empty list of positive numbers"),
    "num_classes": (lambda v: _is_int(v), "a non-negative integer"),
    "crop_pct": (lambda v: _is_number(v) and 0 < v <= 4, "a number in (0, 4]"),
    "pool_size": (lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) == 2
                                          and all(_is_int(x, 1) for x in v)), "two positive integers or null"),
    "interpolation": (lambda v: isinstance(v, str), "a string"),
    "first_conv": (lambda v: v is None or isinstance(v, str), "a module name"),
    "classifier": (lambda v: v is None or isinstance(v, str), "a module name"),
    "tag": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "label_names": (lambda v: v is None or (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)),
                    "a list of strings or null"),
}


def _check_pretrained_cfg(cfg: Mapping[str, Any], origin: str) -> None:
    for key, (ok, what) in _CFG_CHECKS.items():
        if key in cfg and not ok(cfg[key]):
            raise ConfigError(f"{origin}: pretrained_cfg {key!r} must be {what}, got {str(cfg[key])[:100]!r}")


def config_to_json(config: Mapping[str, Any]) -> str:
    """Serialise a config (validated first) as indented JSON text."""
    config = validate_config(config, origin="config_to_json()")
    try:
        return json.dumps(config, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config is not JSON-serialisable: {e}") from None


def config_from_json(text: str, *, origin: str) -> dict[str, Any]:
    """Parse and validate config JSON text; ``origin`` (a path or URL) names the source in errors."""
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{origin}: config is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    return validate_config(config, origin=origin)


def write_config(path: str | Path, config: Mapping[str, Any]) -> None:
    Path(path).write_text(config_to_json(config), encoding="utf-8")


def read_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``config.json``; one larger than the JSON cap is refused unread."""
    path = Path(path)
    try:
        check_json_size(path.stat().st_size, str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"no config file at {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: config is not UTF-8 text ({e})") from None
    return config_from_json(text, origin=str(path))
