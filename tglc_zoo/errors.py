"""Every error tglc_zoo raises on purpose, in one hierarchy.

All derive from :class:`TglcZooError`, so ``except tglc_zoo.errors.TglcZooError`` catches exactly the
failures that tglc_zoo diagnosed itself (bad input, missing files, damaged checkpoints, ...). Each also
derives from the built-in exception a caller would expect (``ValueError``, ``FileNotFoundError``, ...).
Every message names the offending value (path, URL, key, option) and, where the valid values form a
fixed set, lists them.
"""
from __future__ import annotations

__all__ = [
    "TglcZooError", "UnknownChoiceError", "ModelArgumentError", "ExportError",
    "CheckpointError", "CheckpointNotFoundError", "CorruptCheckpointError", "UnsafeCheckpointError",
    "HashMismatchError", "HubFileNotFoundError", "ConfigError", "StateDictMismatchError", "DownloadTimeoutError",
    "DataNotFoundError", "RunExistsError", "RunLockedError", "TrainingInterrupted", "ModelDatasetMismatchError",
    "GroupParallelError", "CollectiveError",
]


class TglcZooError(Exception):
    """Base class of every error tglc_zoo raises on purpose."""


class UnknownChoiceError(TglcZooError, ValueError):
    """A name (model, conv type, dataset, recipe, ...) that is not one of the valid choices."""


class ModelArgumentError(TglcZooError, ValueError):
    """A model argument (a rate, a count, pooling, feature extraction options) the architecture cannot take."""


class ExportError(TglcZooError, RuntimeError):
    """An export could not be made, or the exported model does not compute what the eager model computes."""


# -- checkpoints ------------------------------------------------------------------------------------
class CheckpointError(TglcZooError, ValueError):
    """A checkpoint could not be read, written, trusted or used."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The source names nothing that exists (locally, in a cache, or on the Hub)."""


class HubFileNotFoundError(CheckpointNotFoundError):
    """The Hugging Face repo and revision exist, but hold no file of that name."""


class CorruptCheckpointError(CheckpointError):
    """The file exists but is not a complete, well-formed checkpoint (truncated, wrong format, bad JSON)."""


class UnsafeCheckpointError(CheckpointError):
    """A legacy pickle checkpoint holds objects beyond tensors; it was refused and nothing was executed."""


class HashMismatchError(CheckpointError):
    """The sha256 of a downloaded or cached file does not match the prefix in its file name or manifest."""


class ConfigError(CheckpointError):
    """``config.json`` (or the config in the safetensors metadata) is missing fields, malformed, or
    contradicts the weights."""


class StateDictMismatchError(CheckpointError):
    """Checkpoint and model disagree beyond the deliberate adaptations; the message lists the keys."""


class DownloadTimeoutError(CheckpointNotFoundError, TimeoutError):
    """A server stopped sending within the read timeout, or never answered within the connect timeout."""


# -- data and training ------------------------------------------------------------------------------
class DataNotFoundError(TglcZooError, FileNotFoundError):
    """The dataset's files are not where they were looked for."""


class RunExistsError(TglcZooError, FileExistsError):
    """The output folder already holds a run (or files that are not a run's) and ``--resume`` was not given."""


class RunLockedError(RunExistsError):
    """Another trainer is writing the run folder (the message names it: pid, host, start time)."""


class TrainingInterrupted(TglcZooError, KeyboardInterrupt):
    """SIGTERM or SIGINT stopped a run after it saved a checkpoint; the message says how to resume."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class ModelDatasetMismatchError(TglcZooError, ValueError):
    """The model cannot be trained on the dataset (shapes, classes, or a resumed run's identity)."""


# -- group parallelism ------------------------------------------------------------------------------
class GroupParallelError(TglcZooError, ValueError):
    """A model, a world size or a checkpoint that group parallelism cannot use."""


class CollectiveError(TglcZooError, RuntimeError):
    """A collective failed: a peer died, stalled past the process group's timeout, or disagreed on shapes."""
