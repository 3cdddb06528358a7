"""The cap on JSON read from a checkpoint (``config.json``, a safetensors header), checked before reading.

A config describes a model in a few kilobytes (label names for 21,843 classes take about 0.5 MB), so
anything beyond :data:`DEFAULT_MAX_JSON_BYTES` (8 MiB) is refused by its size alone, before a byte
of it is read or parsed. ``$TGLC_ZOO_MAX_CONFIG_BYTES`` raises (or lowers) the cap.
"""
from __future__ import annotations

import os

from ..errors import ConfigError

__all__ = ["DEFAULT_MAX_JSON_BYTES", "MAX_JSON_ENV", "check_json_size", "max_json_bytes"]

DEFAULT_MAX_JSON_BYTES = 8 << 20
MAX_JSON_ENV = "TGLC_ZOO_MAX_CONFIG_BYTES"


def max_json_bytes() -> int:
    """The cap in bytes: ``$TGLC_ZOO_MAX_CONFIG_BYTES`` when set, else the default."""
    text = os.environ.get(MAX_JSON_ENV, "").replace("_", "").strip()
    if not text:
        return DEFAULT_MAX_JSON_BYTES
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"${MAX_JSON_ENV}={os.environ[MAX_JSON_ENV]!r} is not valid; valid: a positive number of "
                          f"bytes (default {DEFAULT_MAX_JSON_BYTES})")
    return int(text)


def check_json_size(size: int, origin: str, what: str = "config") -> None:
    """Refuse ``size`` bytes of JSON from ``origin`` beyond the cap, naming both and how to raise it."""
    limit = max_json_bytes()
    if size > limit:
        raise ConfigError(f"{origin}: its {what} is {size:,} bytes of JSON, more than the {limit:,} bytes a checkpoint "
                          f"may hold; it was not read (set ${MAX_JSON_ENV} to raise the cap if you trust it)")
