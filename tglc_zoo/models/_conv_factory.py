"""The factory a family builds its replaced convolutions with: one conv type and N per model, per-layer
overrides declared by the architecture, and errors that name the layer."""
from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import ModelArgumentError
from ..layers import CONV_SPECS, GROUPED_CONV_TYPES, check_conv_type, create_conv
from ._checks import check_positive

__all__ = ["ConvFactory", "ConvOverrides"]

ConvOverrides = Mapping[str, Mapping[str, str]]
"""Per-layer conv types an architecture declares: ``{layer name: {requested conv type: conv type built}}``.
MobileNetV2's ``{"conv_head.conv": {"gc2l": "gc"}}`` builds its final 1×1 conv as a GC when the model is GC-2L."""


class ConvFactory:
    """Builds the replaced convolutions of one model; errors name the layer they come from.

    Args:
        conv_type: the model's conv type (one of :data:`~tglc_zoo.layers.CONV_TYPES`).
        groups: N for every replaced conv (1 for a conv type that is not grouped).
        overrides: :data:`ConvOverrides` — a layer named there gets the conv type mapped from the model's.
            :meth:`check_overrides_used` refuses a name no layer was built under.
        **conv_kwargs: options passed to every layer (e.g. GC-2L's ``impl``).
    """

    def __init__(self, conv_type: str, groups: int, overrides: ConvOverrides | None = None,
                 **conv_kwargs: Any) -> None:
        self.conv_type = check_conv_type(conv_type)
        self.groups = check_positive("groups", groups)
        if not CONV_SPECS[conv_type].grouped and groups != 1:
            raise ModelArgumentError(f"conv_type {conv_type!r} is not grouped and needs groups=1, got groups={groups}; "
                                     f"valid grouped conv types: {list(GROUPED_CONV_TYPES)}")
        self.overrides = {layer: {check_conv_type(k): check_conv_type(v) for k, v in by_type.items()}
                          for layer, by_type in (overrides or {}).items()}
        self.conv_kwargs = conv_kwargs
        self.built: list[str] = []

    def conv_type_of(self, layer: str) -> str:
        """The conv type ``layer`` is built with: the model's, or the one its override maps it to."""
        return self.overrides.get(layer, {}).get(self.conv_type, self.conv_type)

    def __call__(self, layer: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1) -> nn.Module:
        conv_type = self.conv_type_of(layer)
        self.built.append(layer)
        try:
            return create_conv(conv_type, in_channels, out_channels, kernel_size, stride, groups=self.groups,
                               dilation=dilation, **self.conv_kwargs)
        except ValueError as e:
            raise ModelArgumentError(f"layer '{layer}' ({in_channels}->{out_channels} channels, "
                                     f"conv_type={conv_type!r}): {e}") from None

    def check_overrides_used(self) -> None:
        """Refuse an override for a layer that was never built (a misspelt name would silently do nothing)."""
        unused = sorted(set(self.overrides) - set(self.built))
        if unused:
            raise ModelArgumentError(f"conv_overrides name layers this model does not build: {unused}; "
                                     f"valid layers: {self.built}")
