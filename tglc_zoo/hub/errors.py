"""Errors raised while reading, writing or locating checkpoints.

Every error names the offending value (path, URL, key, hash) and, where there is a fixed set of
valid choices, lists them.
"""
from __future__ import annotations


class CheckpointError(ValueError):
    """Base class: a checkpoint could not be read, written or trusted."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The source names nothing that exists (locally, in a cache, or on the Hub)."""


class CorruptCheckpointError(CheckpointError):
    """The file exists but is not a complete, well-formed checkpoint (truncated, wrong format, bad JSON)."""


class UnsafeCheckpointError(CheckpointError):
    """A legacy pickle checkpoint holds objects beyond tensors; it was refused and nothing was executed."""


class HashMismatchError(CheckpointError):
    """The sha256 of a downloaded or cached file does not match the prefix in its file name or manifest."""


class ConfigError(CheckpointError):
    """``config.json`` (or the config in the safetensors metadata) is missing fields or malformed."""
