"""The surgery route: any ``nn.Module`` → a copy with its eligible convolutions replaced, saved as ``tglc_grouped``.

A timm or torchvision CNN, any other module, or a zoo model converted with ``include`` / ``exclude`` /
``keep_stem=False``: :func:`surgery_target` deep-copies the source (so shared modules, tied weights,
``requires_grad`` and every module's mode are kept), grafts GC / GC-2L layers in place of the
convolutions :func:`.surgery.choose_convs` chose (:func:`.surgery.graft`), and records the
:class:`~.spec.GroupingSpec` and data config that let ``save_pretrained`` write it as a checkpoint of
the generic architecture :data:`~.spec.GROUPED_ARCH`. The weights are fitted by :func:`.transfer.fit_layers`.
"""
from __future__ import annotations

import copy
from typing import Any

from torch import nn

from ..checkpoint.config import LOCATION_KEYS
from .base import base_data_cfg, describe_base
from .spec import GROUPED_ARCH, ConversionError, GroupingSpec
from .surgery import ConvChoice, find_stem, graft

__all__ = ["surgery_target"]


def surgery_target(model: nn.Module, choices: list[ConvChoice], conv_type: str, groups: int,
                   conv_kwargs: dict[str, Any] | None, base: str | None, base_args: dict[str, Any] | None
                   ) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` with the chosen convolutions replaced by fresh ``conv_type`` layers, its grouping spec
    (``base`` / ``base_args``: what rebuilds the source; recognised from it when ``base`` is ``None``) and data
    config attached, and the names of the replaced layers."""
    names = [c.name for c in choices if c.replace]
    if not names:
        kept = "; ".join(f"{c.name}: {c.reason}" for c in choices[:12]) or "the model has no nn.Conv2d"
        raise ConversionError(f"nothing to convert in {type(model).__name__} with N={groups}: {kept}")
    if base is None:
        described = describe_base(model)
        base, base_args = described if described is not None else (None, {})
    target = copy.deepcopy(model)
    graft(target, names, conv_type, groups, conv_kwargs)
    spec = GroupingSpec(base, dict(base_args or {}), conv_type, groups, tuple(names), dict(conv_kwargs or {}))
    stem = find_stem(model)
    cfg = {k: v for k, v in base_data_cfg(model, stem[0] if stem else None).items() if k not in LOCATION_KEYS}
    target.pretrained_cfg = {**cfg, "architecture": GROUPED_ARCH, "tag": None}  # type: ignore[assignment]
    target.model_args = spec.to_model_args()  # type: ignore[assignment]  # Module.__setattr__ is typed Tensor|Module
    target.grouping = spec  # type: ignore[assignment]
    return target, names
