"""The grouping spec: what turns a dense base model into its converted form, as JSON-able model arguments.

A converted model that is not one of tglc_zoo's own architectures is saved under the one generic
architecture :data:`GROUPED_ARCH`; its ``model_args`` are a :class:`GroupingSpec`::

    {"base": "resnet18", "base_args": {"num_classes": 10, "in_chans": 1},
     "conv_type": "gc2l", "groups": 4, "layers": ["layer1.0.conv1", ...], "conv_kwargs": {}}

``base`` is a timm name or ``"torchvision:<name>"`` (:mod:`.base`); ``layers`` are the replaced
convolutions, listed so that the structure never depends on the eligibility rules of the version
that reads the checkpoint.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TglcZooError
from .fit import check_target_type

__all__ = ["GROUPED_ARCH", "GroupingSpec", "ConversionError"]

GROUPED_ARCH = "tglc_grouped"
_FIELDS = ("base", "base_args", "conv_type", "groups", "layers", "conv_kwargs")


class ConversionError(TglcZooError, ValueError):
    """A model that cannot be converted, rebuilt from its grouping spec, or saved as converted."""


@dataclass(frozen=True)
class GroupingSpec:
    """Base model + which of its convolutions are replaced by what (see the module docstring)."""

    base: str | None
    base_args: dict[str, Any]
    conv_type: str
    groups: int
    layers: tuple[str, ...]
    conv_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_model_args(self) -> dict[str, Any]:
        return dict(base=self.base, base_args=dict(self.base_args), conv_type=self.conv_type, groups=self.groups,
                    layers=list(self.layers), conv_kwargs=dict(self.conv_kwargs))

    @classmethod
    def from_model_args(cls, args: Mapping[str, Any], *, origin: str = "model_args") -> GroupingSpec:
        """Parse and check ``model_args`` of a :data:`GROUPED_ARCH` checkpoint; unknown keys are an error."""
        unknown = sorted(set(args) - set(_FIELDS))
        if unknown:
            raise ConversionError(f"{origin}: unknown arguments {unknown} for {GROUPED_ARCH!r}; valid: {list(_FIELDS)}")
        missing = [k for k in ("base", "conv_type", "groups", "layers") if k not in args]
        if missing:
            raise ConversionError(f"{origin}: {GROUPED_ARCH!r} needs {missing} (got {sorted(args)})")
        base, groups, layers = args["base"], args["groups"], args["layers"]
        if not isinstance(base, str) or not base:
            raise ConversionError(f"{origin}: base must name the dense model (a timm name or 'torchvision:<name>'), "
                                  f"got {base!r}")
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise ConversionError(f"{origin}: groups must be a positive integer, got {groups!r}")
        if not isinstance(layers, (list, tuple)) or not all(isinstance(n, str) for n in layers):
            raise ConversionError(f"{origin}: layers must be a list of module names, got {layers!r}")
        for key in ("base_args", "conv_kwargs"):
            if not isinstance(args.get(key, {}), Mapping):
                raise ConversionError(f"{origin}: {key} must be an object, got {args[key]!r}")
        try:
            conv_type = check_target_type(args["conv_type"])
        except ValueError as e:
            raise ConversionError(f"{origin}: {e}") from None
        return cls(base, dict(args.get("base_args", {})), conv_type, groups, tuple(layers),
                   dict(args.get("conv_kwargs", {})))
