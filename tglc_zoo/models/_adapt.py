"""Strict loading of a state dict into a model, with the two deliberate adaptations.

Everything must match — keys, shapes, kinds of tensors — except what the caller asked to change:

* ``adapt_head`` (the user asked for another ``num_classes``): the checkpoint's classifier
  (``pretrained_cfg["classifier"]``) is dropped and the model keeps its freshly initialised one;
* ``adapt_stem`` (the user asked for another ``in_chans``): the stem's filters
  (``pretrained_cfg["first_conv"]``) are adapted — to 1 channel by summing over input channels,
  otherwise by repeating them cyclically and scaling by ``source / target`` channels. So a grey image
  repeated over the channels gives the same stem output before and after adaptation.

Each adaptation is logged. Pure model-level code: no files, no downloads. The rules of the whole
loading path are in ``docs/loading.md``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import StateDictMismatchError

_logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What :func:`load_pretrained_into` did."""

    adapted: list[str] = field(default_factory=list)      # human-readable notes, one per adaptation
    reinitialised: list[str] = field(default_factory=list)  # keys left at the model's initialisation
    missing: list[str] = field(default_factory=list)        # only non-empty with strict=False
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def adapt_stem_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a conv weight ``(out, c_src, kh, kw)`` to ``in_chans`` input channels.

    ``in_chans == 1``: sum over input channels. Otherwise: repeat the ``c_src`` filters cyclically up to
    ``in_chans`` and scale by ``c_src / in_chans``.
    """
    if weight.dim() != 4:
        raise ValueError(f"stem weight must be 4-D (out, in, kh, kw), got shape {tuple(weight.shape)}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
    src = weight.shape[1]
    if src == in_chans:
        return weight
    dtype = weight.dtype
    w = weight.float()
    if in_chans == 1:
        out = w.sum(dim=1, keepdim=True)
    else:
        out = w.repeat(1, math.ceil(in_chans / src), 1, 1)[:, :in_chans] * (src / in_chans)
    return out.to(dtype)


def adapt_channel_stats(values: tuple[float, ...], in_chans: int) -> tuple[float, ...]:
    """Per-channel normalisation (mean or std) for ``in_chans`` channels, matching :func:`adapt_stem_weight`:
    averaged to one channel, or repeated cyclically."""
    values = tuple(float(v) for v in values)
    if len(values) in (0, in_chans):
        return values
    if in_chans == 1:
        return (sum(values) / len(values),)
    return tuple(values[i % len(values)] for i in range(in_chans))


def _module_key(cfg: Mapping[str, object], name: str) -> str | None:
    value = cfg.get(name)
    return value if isinstance(value, str) and value else None


def check_tensor_values(state_dict: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> None:
    """Refuse what loading would silently destroy or what no trained model holds: a non-float tensor where
    the model keeps a float one (or the reverse), NaN/Inf values, a negative BatchNorm running variance."""
    kinds = [f"{k}: checkpoint {sd_t.dtype} vs model {own[k].dtype}" for k, sd_t in state_dict.items()
             if k in own and sd_t.is_floating_point() != own[k].is_floating_point()]
    if kinds:
        raise StateDictMismatchError(f"checkpoint tensors of another kind than the model's ({len(kinds)}): "
                                     f"{kinds[:10]}; casting them would change their values")
    bad = [k for k, t in state_dict.items() if t.is_floating_point() and t.numel() and not torch.isfinite(t).all()]
    if bad:
        raise StateDictMismatchError(f"checkpoint holds NaN or Inf values in {len(bad)} tensors: {bad[:10]}")
    neg = [k for k, t in state_dict.items() if k.endswith("running_var") and t.is_floating_point()
           and t.numel() and bool((t < 0).any())]
    if neg:
        raise StateDictMismatchError(f"checkpoint holds negative BatchNorm running variances in {neg[:10]}")


def load_pretrained_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True,
                         adapt_head: bool = False, adapt_stem: bool = False) -> LoadReport:
    """Load ``state_dict`` into ``model`` strictly; adapt the head or the stem only when asked.

    Args:
        model: a tglc_zoo model (``pretrained_cfg`` names ``classifier`` and ``first_conv``).
        state_dict: the checkpoint's tensors.
        strict: raise :class:`StateDictMismatchError` listing missing/unexpected/mismatched keys; with
            ``False`` they are reported in the returned :class:`LoadReport` and skipped.
        adapt_head: the caller asked for another ``num_classes`` than the checkpoint's: the checkpoint's
            classifier is dropped and the model keeps its fresh one. The classifier's input features must
            still match (they are the body's output).
        adapt_stem: the caller asked for another ``in_chans``: the stem's filters are adapted
            (:func:`adapt_stem_weight`).

    Tensors are never cast between float and integer kinds, and NaN/Inf values or negative BatchNorm
    variances are refused (:func:`check_tensor_values`).
    """
    cfg: Mapping[str, object] = getattr(model, "pretrained_cfg", {}) or {}
    own = model.state_dict()
    sd = dict(state_dict)
    report = LoadReport()

    classifier = _module_key(cfg, "classifier")
    if adapt_head and classifier:
        head = [k for k in own if k.startswith(classifier + ".")]
        ckpt_head = [k for k in sd if k.startswith(classifier + ".")]
        src, dst = sd.get(f"{classifier}.weight"), own.get(f"{classifier}.weight")
        if src is not None and dst is not None and src.dim() == 2 and src.shape[1] != dst.shape[1]:
            raise StateDictMismatchError(
                f"classifier '{classifier}': the checkpoint's takes {src.shape[1]} features but the model's body "
                f"gives {dst.shape[1]}; these weights are not of this architecture")
        src_classes = src.shape[0] if src is not None else 0
        for k in ckpt_head:
            del sd[k]
        report.reinitialised += head
        report.adapted.append(f"classifier '{classifier}': checkpoint has {src_classes} classes, model has "
                              f"{getattr(model, 'num_classes', '?')}; the head keeps its fresh initialisation")

    first_conv = _module_key(cfg, "first_conv")
    stem_key = f"{first_conv}.weight" if first_conv else None
    if adapt_stem and stem_key and stem_key in sd and stem_key in own:
        src_w, dst_w = sd[stem_key], own[stem_key]
        if src_w.dim() == 4 and src_w.shape[1] != dst_w.shape[1] and src_w.shape[0] == dst_w.shape[0] \
                and src_w.shape[2:] == dst_w.shape[2:]:
            sd[stem_key] = adapt_stem_weight(src_w, dst_w.shape[1])
            how = "summed over input channels" if dst_w.shape[1] == 1 else "repeated cyclically and rescaled"
            report.adapted.append(f"stem '{first_conv}': {src_w.shape[1]} input channels -> {dst_w.shape[1]} "
                                  f"({how})")

    reinit = set(report.reinitialised)
    report.missing = sorted(k for k in own if k not in sd and k not in reinit)
    report.unexpected = sorted(k for k in sd if k not in own)
    report.mismatched = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                               for k in sd if k in own and sd[k].shape != own[k].shape)
    if strict and (report.missing or report.unexpected or report.mismatched):
        name = cfg.get("architecture", type(model).__name__)
        parts = [f"{label} ({len(keys)}): {keys[:20]}{' ...' if len(keys) > 20 else ''}"
                 for label, keys in (("missing keys", report.missing), ("unexpected keys", report.unexpected),
                                     ("shape mismatches", report.mismatched)) if keys]
        raise StateDictMismatchError(f"checkpoint does not fit {name}: " + "; ".join(parts))
    check_tensor_values(sd, own)
    for note in report.adapted:
        _logger.warning("adapting pretrained weights: %s", note)
    bad = {k.split(":")[0] for k in report.mismatched}
    loadable = {k: v for k, v in sd.items() if k in own and k not in bad}
    model.load_state_dict(loadable, strict=False)
    return report
