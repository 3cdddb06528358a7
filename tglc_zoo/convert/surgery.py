"""Surgery on any ``nn.Module``: which ``nn.Conv2d`` layers a conversion replaces, and the replacement.

A convolution is **eligible** when it is a plain dense ``nn.Conv2d`` (``groups == 1``, zero padding,
the forward of ``nn.Conv2d`` itself), N divides its input and output channels, and it is not the
stem (unless ``keep_stem=False``). Module-name patterns (``fnmatch``: ``"layer4.*"``,
``"*.conv_pw"``) select (``include``) or skip (``exclude``) layers. :func:`choose_convs` decides for
every ``nn.Conv2d`` of the model and says why a layer is skipped; :func:`graft` puts GC / GC-2L
layers with the same geometry (kernel, stride, padding, dilation, bias) in place of the chosen ones.

Surgery keeps what the model means, not only its layers:

* **one module, several names** (``self.b = self.a``): it is one convolution, decided once (under the
  name ``named_modules`` gives it; a pattern matching any of its names applies) and replaced under
  every name by one new layer (:func:`aliases`);
* **tied weights** (two convolutions holding one ``Parameter``): the new layers hold one set of
  parameters too; a convolution whose weight or bias is shared with a tensor that is *not* replaced
  the same way is kept, with the reason (:func:`tied_parameters`);
* **frozen weights**: each new parameter takes ``requires_grad`` from the weight (or bias) it
  replaces, and each new layer the train/eval mode, device and dtype of the convolution.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..layers import CONV_SPECS, create_conv

__all__ = ["ConvChoice", "aliases", "choose_convs", "conv_geometry", "find_stem", "graft", "tied_parameters"]

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
    aliases: tuple[str, ...] = ()  # the other names of this very module (replaced or kept with it)

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


def _first_names(model: nn.Module) -> dict[str, str]:
    """Every module name, the names of aliases included → the module's first name (``named_modules``')."""
    first: dict[int, str] = {}
    return {name: first.setdefault(id(mod), name) for name, mod in model.named_modules(remove_duplicate=False)}


def aliases(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """The modules reachable under several names (``self.b = self.a``): first name → the other names."""
    out: dict[str, list[str]] = {}
    for name, first in _first_names(model).items():
        if name != first:
            out.setdefault(first, []).append(name)
    return {k: tuple(v) for k, v in out.items()}


def tied_parameters(model: nn.Module) -> list[frozenset[tuple[str, str]]]:
    """The parameters held by several modules (weight tying), each as its ``{(module, attribute)}`` users.

    Modules are named by their first name, so a module under two names (:func:`aliases`) is one user.
    """
    first = _first_names(model)
    users: dict[int, set[tuple[str, str]]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        module, _, attr = name.rpartition(".")
        users.setdefault(id(param), set()).add((first[module], attr))
    return [frozenset(u) for u in users.values() if len(u) > 1]


def find_stem(model: nn.Module) -> tuple[str, ...]:
    """The stem: ``pretrained_cfg["first_conv"]`` (timm's convention: a name or several) when it names
    convolutions of the model, otherwise the first ``nn.Conv2d`` in module order."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    canonical = _first_names(model)  # first_conv may name an alias
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    named = tuple(dict.fromkeys(canonical[n] for n in _names(cfg.get("first_conv")) if canonical.get(n) in convs))
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

    Convolutions inside layers that are already grouped (GC, GC-2L, Shuffle, FLGC) are not listed. A
    module under several names is listed once, with its other names in ``aliases``.
    """
    inc, exc = _names(include), _names(exclude)
    stem = set(find_stem(model)) if keep_stem else set()
    also = aliases(model)
    inside: list[str] = []
    out: list[ConvChoice] = []
    for name, mod in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(mod, _CONV_TYPE_LAYERS):
            inside.append(name)
        if not isinstance(mod, nn.Conv2d):
            continue
        names = (name, *also.get(name, ()))
        excluded = next((p for p in exc if any(fnmatch.fnmatchcase(n, p) for n in names)), None)
        if name in stem:
            reason = "the stem (it reads the input image; keep_stem=False replaces it too)"
        elif inc and not any(fnmatch.fnmatchcase(n, p) for p in inc for n in names):
            reason = f"not matched by include={list(inc)}"
        elif excluded is not None:
            reason = f"excluded by pattern {excluded!r}"
        else:
            reason = _why_not(name, mod, groups)
        padding = mod.padding if isinstance(mod.padding, str) else (int(mod.padding[0]), int(mod.padding[1]))
        out.append(ConvChoice(name, mod.in_channels, mod.out_channels, _pair(mod.kernel_size), _pair(mod.stride),
                              padding, _pair(mod.dilation), mod.groups, mod.bias is not None,
                              replace=not reason, reason=reason, aliases=names[1:]))
    return _keep_ties(model, out)


def _keep_ties(model: nn.Module, choices: list[ConvChoice]) -> list[ConvChoice]:
    """Keep every convolution whose weight or bias is one ``Parameter`` with a tensor that is not replaced the
    same way (another role, a module that stays): replacing it would untie them. Repeated until stable."""
    by_name = {c.name: c for c in choices}
    ties = tied_parameters(model)
    changed = True
    while changed:
        changed = False
        for users in ties:
            replaced = sorted(m for m, _ in users if m in by_name and by_name[m].replace)
            kept = sorted(f"{m}.{a}" for m, a in users if m not in replaced)
            if not replaced or (not kept and len({a for _, a in users}) == 1):
                continue
            for m, attr in sorted(users):
                if m in replaced:
                    other = kept[0] if kept else next(f"{n}.{a}" for n, a in sorted(users) if a != attr)
                    by_name[m] = dataclasses.replace(
                        by_name[m], replace=False,
                        reason=f"its {attr} is one Parameter with {other!r}, which is not replaced the same way; "
                               "replacing it would untie them")
                    changed = True
    return [by_name[c.name] for c in choices]


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1]))


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def _set_parameter(layer: nn.Module, name: str, param: nn.Parameter) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(layer.get_submodule(owner) if owner else layer, attr, param)


def _keep_trainability_and_ties(layer: nn.Module, conv: nn.Conv2d,
                                made: dict[tuple[int, str], tuple[torch.Tensor, nn.Parameter]]) -> None:
    """Each parameter of ``layer`` takes ``requires_grad`` from the tensor of ``conv`` it replaces (its bias for
    a bias, else its weight); where that tensor was already replaced (a tied weight), ``layer`` holds the same
    new parameter. ``made``: (id of a replaced tensor, parameter name) → (that tensor, its new parameter)."""
    for name, param in list(layer.named_parameters()):
        source = conv.bias if name.rpartition(".")[2] == "bias" else conv.weight
        assert source is not None  # the layer has a bias exactly when the convolution has one
        param.requires_grad_(source.requires_grad)
        key = (id(source), name)
        if key in made:
            _set_parameter(layer, name, made[key][1])
        else:
            made[key] = (source, param)  # the source is held, so its id is not reused meanwhile


def graft(model: nn.Module, names: Iterable[str], conv_type: str, groups: int,
          conv_kwargs: dict[str, Any] | None = None) -> dict[str, nn.Module]:
    """Replace each named ``nn.Conv2d`` of ``model`` (in place) by a ``conv_type`` layer with N = ``groups``
    and the same geometry, device, dtype, mode and ``requires_grad``, under every name of that module, and
    with convolutions that shared a weight sharing the new one; returns the new layers by name (freshly
    initialised)."""
    every: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        every.setdefault(id(module), (module, []))[1].append(name)
    made: dict[tuple[int, str], tuple[torch.Tensor, nn.Parameter]] = {}
    new: dict[str, nn.Module] = {}
    done: set[str] = set()
    for name in names:
        if name in done:  # another name of a module already replaced
            new[name] = model.get_submodule(name)
            continue
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
        _keep_trainability_and_ties(layer, conv, made)
        for alias in every[id(conv)][1]:
            _set_submodule(model, alias, layer)
            done.add(alias)
        new[name] = layer
    return new
