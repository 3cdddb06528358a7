"""What a dataset is: its fixed facts plus how to read it and how to transform its images."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from ..errors import DataNotFoundError

__all__ = ["DatasetInfo", "Loader", "TransformFactory", "data_not_found"]

# load(info, data_dir, train, download) -> a Dataset with ``.classes`` and a settable ``.transform``
Loader = Callable[["DatasetInfo", "str | os.PathLike[str] | None", bool, bool], Dataset]
# transform(info, train, augment, image_size) -> the per-sample transform
TransformFactory = Callable[["DatasetInfo", bool, bool, "int | None"], Callable[[Any], Any]]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: facts (channels, classes, normalisation, labels, default recipe) and behaviour.

    ``num_classes`` is ``None`` when it comes from the files (imagenet); :func:`~tglc_zoo.data.build_datasets`
    returns a copy with it (and ``label_names``) filled in.
    """

    name: str
    in_chans: int
    num_classes: int | None
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label_names: tuple[str, ...]
    default_recipe: str
    how_to_get: str
    augmentation: str                       # the training augmentation, in words (model cards)
    load: Loader = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    transform: TransformFactory = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    needs_data_dir: bool = False            # no default location: --data-dir is required
    hub_id: str | None = None               # the Hugging Face Hub dataset id (model cards' ``datasets``)
    classes_from_files: bool = False        # num_classes / label_names come from the files

    def replace(self, **changes: Any) -> DatasetInfo:
        return dataclasses.replace(self, **changes)


def data_not_found(info: DatasetInfo, searched: list[Any], detail: str = "") -> DataNotFoundError:
    """The error for ``info``'s files missing: every place that was searched, and how to get the data."""
    places = "\n".join(f"  - {p}" for p in searched) or "  (no location given)"
    extra = f" ({detail})" if detail else ""
    return DataNotFoundError(f"{info.name} data not found{extra}. Looked in:\n{places}\nTo get it: {info.how_to_get}")
