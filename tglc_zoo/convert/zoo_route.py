"""The zoo route: a dense tglc_zoo model → its registered GC / GC-2L architecture ``<arch>_<conv_type>_n<N>``.

:func:`zoo_arch` recognises a dense zoo model; :func:`zoo_target` builds the converted architecture
as ``create_model`` builds it (the paper's replacement rules, README "Models": in MobileNetV2 the
final 1×1 convolution is a plain GC), copies every tensor outside the replaced convolutions, the
data config, each parameter's ``requires_grad`` and each module's train/eval mode, and names the
replaced layers for :func:`.transfer.fit_layers`. A registered architecture shares no module and no
weight, so a source that does (``self.b = self.a``, tied weights) is refused here; the surgery route
(:mod:`.surgery_route`) keeps such sharing.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from timm.models import split_model_name_tag
from torch import nn

from ..archs import VARIANTS
from ..layers import GroupConv2d, TwoLevelGroupConv2d
from ..models._base import ZooModel
from ..registry import create_model
from .spec import ConversionError
from .surgery import aliases, tied_parameters

__all__ = ["zoo_arch", "zoo_target"]

# pretrained_cfg fields that describe the data/head (carried over); location fields never are
_DATA_KEYS: tuple[str, ...] = ("num_classes", "input_size", "test_input_size", "fixed_input_size", "mean", "std",
                               "crop_pct", "crop_mode", "interpolation", "pool_size", "label_names", "license")


def zoo_arch(model: nn.Module) -> str | None:
    """The architecture of a dense tglc_zoo model (``None`` for any other model)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture")
    if not isinstance(arch, str) or split_model_name_tag(arch)[0] not in VARIANTS:
        return None
    variant = VARIANTS[split_model_name_tag(arch)[0]]
    conv_type = (getattr(model, "model_args", None) or {}).get("conv_type", variant.conv_type)
    groups = (getattr(model, "model_args", None) or {}).get("groups", variant.groups)
    if conv_type != "sc" or groups != 1:
        raise ConversionError(f"to_grouped converts dense models (conv_type 'sc'); {arch!r} has conv_type "
                              f"{conv_type!r} with groups={groups}")
    return variant.arch


def _refuse_sharing(model: nn.Module, name: str) -> None:
    also = aliases(model)
    ties = [sorted(f"{m}.{a}" for m, a in users) for users in tied_parameters(model)]
    if also or ties:
        first = next(iter(also.items()), None)
        what = (f"module {first[0]!r} is also {list(first[1])}" if first else f"{ties[0]} are one Parameter")
        raise ConversionError(f"the registered architecture {name!r} shares no module or weight, but in the source "
                              f"{what}; convert by surgery, which keeps the sharing: "
                              "to_grouped(model, ..., include='*')")


def _copy_others(model: nn.Module, target: nn.Module, replaced: Sequence[str]) -> None:
    """Every tensor of ``target`` outside the replaced layers, from the source (same keys and shapes)."""
    src_state = model.state_dict()
    state = target.state_dict()
    prefixes = tuple(f"{name}." for name in replaced)
    for key, value in state.items():
        if key.startswith(prefixes):
            continue
        if key not in src_state or src_state[key].shape != value.shape:
            raise ValueError(f"cannot copy {key!r} from the source model: "
                             f"{'missing' if key not in src_state else f'shape {tuple(src_state[key].shape)}'} "
                             f"vs {tuple(value.shape)} in the converted model")
        state[key] = src_state[key]
    target.load_state_dict(state, strict=True)


def _copy_flags(model: nn.Module, target: nn.Module, replaced: Sequence[str]) -> None:
    """``requires_grad`` and train/eval mode from the source; inside a replaced layer, from the convolution it
    replaces (its bias for a bias, else its weight)."""
    params, modules = dict(model.named_parameters()), dict(model.named_modules())

    def layer(name: str) -> str | None:
        return next((n for n in replaced if name == n or name.startswith(f"{n}.")), None)

    for name, param in target.named_parameters():
        owner = layer(name)
        key = name if owner is None else f"{owner}.{'bias' if name.endswith('bias') else 'weight'}"
        if key in params:
            param.requires_grad_(params[key].requires_grad)
    for name, module in target.named_modules():
        source = modules.get(layer(name) or name)
        if source is not None:
            module.training = source.training


def zoo_target(model: nn.Module, arch: str, conv_type: str, groups: int,
               conv_kwargs: dict[str, Any] | None) -> tuple[nn.Module, list[str]]:
    """The converted architecture of the dense zoo model ``model`` (of architecture ``arch``), with everything but
    the replaced layers copied, and the names of those layers."""
    args = dict(getattr(model, "model_args", None) or {})
    args.update(conv_type=conv_type, groups=groups)
    if conv_kwargs:
        args["conv_kwargs"] = {**args.get("conv_kwargs", {}), **conv_kwargs}
    name = f"{arch}_{conv_type}_n{groups}"
    _refuse_sharing(model, name)
    target = create_model(name if name in VARIANTS else arch, num_classes=model.num_classes, **args)
    src_cfg = getattr(model, "pretrained_cfg", {}) or {}
    zoo = cast(ZooModel, target)  # a tglc_zoo model (create_model of a registered name)
    zoo.pretrained_cfg = {**zoo.pretrained_cfg, **{k: src_cfg[k] for k in _DATA_KEYS if k in src_cfg}}
    names = [n for n, m in target.named_modules() if isinstance(m, (GroupConv2d, TwoLevelGroupConv2d))]
    _copy_others(model, target, names)
    _copy_flags(model, target, names)
    return target, names
