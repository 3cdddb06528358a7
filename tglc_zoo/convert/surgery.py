"""Surgery on any ``nn.Module``: which ``nn.Conv2d`` layers a conversion replaces, and the replacement.

A convolution is **eligible** when it is a plain dense ``nn.Conv2d`` (``groups == 1``, zero padding,
the forward of ``nn.Conv2d`` itself), N divides its input and output channels, and it is not the
stem (unless ``keep_stem=False``). Module-name patterns (``fnmatch``: ``"layer4.*"``,
``"*.conv_pw"``) select (``include``) or skip (``exclude``) layers. :func:`choose_convs` decides for
every ``nn.Conv2d`` of the model and says why a layer is skipped; :func:`graft` puts GC / GC-2L
layers with the same geometry (kernel, stride, padding, dilation, bias) in place of the chosen ones.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..layers import CONV_SPECS, create_conv

__all__ = ["ConvChoice", "choose_convs", "find_stem", "graft", "conv_geometry"]

# a layer of one of tglc_zoo's conv types is already grouped: its inner nn.Conv2d are not the model's convs
_CONV_TYPE_LAYERS: tuple[type[nn.Module], ...] = tuple(s.layer for s in CONV_SPECS.values() if s.grouped)


@dataclass(frozen=True)
class ConvChoice:
    """One ``nn.Conv2d`` of a model and what the conversion does with it."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int
    bias: bool
    replace: bool
    reason: str = ""            # why it is skipped ("" when replaced)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": self.shape}


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def find_stem(model: nn.Module) -> tuple[str, ...]:
    """The stem: ``pretrained_cfg["first_conv"]`` (timm's convention: a name or several) when it names
    convolutions of the model, otherwise the first ``nn.Conv2d`` in module order."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    named = tuple(n for n in _names(cfg.get("first_conv")) if n in convs)
    if named:
        return named
    first = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    return (first,) if first is not None else ()


def _same_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """``padding='same'`` / ``'valid'`` as explicit symmetric integers, where they exist."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.stride != (1, 1):
        return None
    total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
    if any(t % 2 for t in total):
        return None
    return (total[0] // 2, total[1] // 2)


def conv_geometry(conv: nn.Conv2d) -> tuple[int, int] | None:
    """The integer padding of ``conv``, or ``None`` when it has none (asymmetric ``'same'`` padding)."""
    if isinstance(conv.padding, str):
        return _same_padding(conv)
    return (int(conv.padding[0]), int(conv.padding[1]))


def _why_not(name: str, conv: nn.Conv2d, groups: int) -> str:
    """The reason a convolution cannot be replaced, or ``""``."""
    if type(conv).forward is not nn.Conv2d.forward or type(conv)._conv_forward is not nn.Conv2d._conv_forward:
        return f"{type(conv).__name__} has its own forward (not nn.Conv2d's); only plain convolutions are replaced"
    if conv.groups != 1:
        kind = "depthwise" if conv.groups == conv.in_channels else "grouped"
        return f"{kind} (groups={conv.groups}); only dense convolutions (groups=1) are replaced"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r}; only zero padding is supported"
    if conv_geometry(conv) is None:
        return f"padding={conv.padding!r} is not symmetric at stride {conv.stride}"
    if conv.in_channels % groups or conv.out_channels % groups:
        return f"N={groups} does not divide {conv.in_channels}->{conv.out_channels} channels"
    return ""


def choose_convs(model: nn.Module, groups: int, *, include: str | Sequence[str] | None = None,
                 exclude: str | Sequence[str] | None = None, keep_stem: bool = True) -> list[ConvChoice]:
    """Every ``nn.Conv2d`` of ``model`` (module order) with the decision: replaced, or skipped and why.

    Convolutions inside layers that are already grouped (GC, GC-2L, Shuffle, FLGC) are not listed.
    """
    inc, exc = _names(include), _names(exclude)
    stem = set(find_stem(model)) if keep_stem else set()
    inside: list[str] = []
    out: list[ConvChoice] = []
    for name, mod in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(mod, _CONV_TYPE_LAYERS):
            inside.append(name)
        if not isinstance(mod, nn.Conv2d):
            continue
        if name in stem:
            reason = "the stem (it reads the input image; keep_stem=False replaces it too)"
        elif inc and not any(fnmatch.fnmatchcase(name, p) for p in inc):
            reason = f"not matched by include={list(inc)}"
        elif any(fnmatch.fnmatchcase(name, p) for p in exc):
            reason = f"excluded by pattern {next(p for p in exc if fnmatch.fnmatchcase(name, p))!r}"
        else:
            reason = _why_not(name, mod, groups)
        padding = mod.padding if isinstance(mod.padding, str) else (int(mod.padding[0]), int(mod.padding[1]))
        out.append(ConvChoice(name, mod.in_channels, mod.out_channels, _pair(mod.kernel_size), _pair(mod.stride),
                              padding, _pair(mod.dilation), mod.groups, mod.bias is not None,
                              replace=not reason, reason=reason))
    return out


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1]))


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def graft(model: nn.Module, names: Iterable[str], conv_type: str, groups: int,
          conv_kwargs: dict[str, Any] | None = None) -> dict[str, nn.Module]:
    """Replace each named ``nn.Conv2d`` of ``model`` (in place) by a ``conv_type`` layer with N = ``groups``
    and the same geometry, device and dtype; returns the new layers by name (freshly initialised)."""
    new: dict[str, nn.Module] = {}
    for name in names:
        conv = model.get_submodule(name)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"layer {name!r} is a {type(conv).__name__}, not an nn.Conv2d")
        padding = conv_geometry(conv)
        if padding is None:
            raise ValueError(f"layer {name!r}: padding={conv.padding!r} has no symmetric integer form")
        weight = conv.weight
        with torch.device(weight.device):
            layer = create_conv(conv_type, conv.in_channels, conv.out_channels, _pair(conv.kernel_size),
                                _pair(conv.stride), padding, groups=groups, bias=conv.bias is not None,
                                dilation=_pair(conv.dilation), **(conv_kwargs or {}))
        layer.to(dtype=weight.dtype).train(conv.training)
        _set_submodule(model, name, layer)
        new[name] = layer
    return new
