"""Strict loading of a state dict into a model, with the two deliberate adaptations.

Everything must match — keys, shapes, kinds of tensors — except what the caller asked to change:

* ``adapt_head`` (the user asked for another ``num_classes``): the checkpoint's classifier
  (``pretrained_cfg["classifier"]``) is dropped and the model keeps its freshly initialised one (with
  ``num_classes=0`` the model has no classifier at all);
* ``adapt_stem`` (the user asked for another ``in_chans``): the stem's filters
  (``pretrained_cfg["first_conv"]``) are adapted by :func:`tglc_zoo.models._adapt.adapt_stem_weight`.

:func:`plan_state_dict` decides all of this from shapes alone, so the builder runs it on the meta
model and the checkpoint's header (:func:`check_fits`) before anything real is built;
:func:`load_pretrained_into` runs it again on the real tensors and loads them. Each adaptation is
logged. The rules of the whole loading path are in ``docs/loading.md``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import StateDictMismatchError
from ..models._adapt import adapt_stem_weight

__all__ = ["LoadReport", "check_fits", "check_tensor_values", "load_pretrained_into", "plan_state_dict"]

_logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What loading a checkpoint into a model does (:func:`plan_state_dict`) and did."""

    adapted: list[str] = field(default_factory=list)      # human-readable notes, one per adaptation
    reinitialised: list[str] = field(default_factory=list)  # keys left at the model's initialisation
    dropped: list[str] = field(default_factory=list)        # checkpoint keys not loaded (its old head)
    stem: str | None = None                                  # the stem weight whose input channels are adapted
    missing: list[str] = field(default_factory=list)        # only non-empty with strict=False
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def _module_key(cfg: Mapping[str, object], name: str) -> str | None:
    value = cfg.get(name)
    return value if isinstance(value, str) and value else None


def _head(report: LoadReport, own: Mapping[str, Sequence[int]], ckpt: Mapping[str, Sequence[int]],
          classifier: str, num_classes: object) -> None:
    src, dst = ckpt.get(f"{classifier}.weight"), own.get(f"{classifier}.weight")
    if src is not None and dst is not None and len(src) == 2 and len(dst) == 2 and src[1] != dst[1]:
        raise StateDictMismatchError(
            f"classifier '{classifier}': the checkpoint's takes {src[1]} features but the model's body "
            f"gives {dst[1]}; these weights are not of this architecture")
    report.dropped += [k for k in ckpt if k.startswith(classifier + ".")]
    report.reinitialised += [k for k in own if k.startswith(classifier + ".")]
    src_classes = src[0] if src is not None and len(src) == 2 else 0
    if num_classes == 0 and not any(k.startswith(classifier + ".") for k in own):
        report.adapted.append(f"classifier '{classifier}': checkpoint has {src_classes} classes; with "
                              "num_classes=0 the model has no classifier and returns its pooled features")
    else:
        report.adapted.append(f"classifier '{classifier}': checkpoint has {src_classes} classes, model has "
                              f"{num_classes}; the head keeps its fresh initialisation")


def plan_state_dict(own: Mapping[str, Sequence[int]], ckpt: Mapping[str, Sequence[int]], cfg: Mapping[str, object],
                    *, num_classes: object = "?", adapt_head: bool = False, adapt_stem: bool = False) -> LoadReport:
    """Which checkpoint tensors load where, from the model's (``own``) and the checkpoint's shapes alone."""
    report = LoadReport()
    classifier = _module_key(cfg, "classifier")
    if adapt_head and classifier:
        _head(report, own, ckpt, classifier, num_classes)
    first_conv = _module_key(cfg, "first_conv")
    stem_key = f"{first_conv}.weight" if first_conv else None
    shapes = {k: tuple(v) for k, v in ckpt.items() if k not in set(report.dropped)}
    if adapt_stem and stem_key and stem_key in shapes and stem_key in own:
        src, dst = shapes[stem_key], tuple(own[stem_key])
        if len(src) == 4 and len(dst) == 4 and src[1] != dst[1] and src[0] == dst[0] and src[2:] == dst[2:]:
            how = "summed over input channels" if dst[1] == 1 else "repeated cyclically and rescaled"
            report.adapted.append(f"stem '{first_conv}': {src[1]} input channels -> {dst[1]} ({how})")
            report.stem = stem_key
            shapes[stem_key] = dst
    reinit = set(report.reinitialised)
    report.missing = sorted(k for k in own if k not in shapes and k not in reinit)
    report.unexpected = sorted(k for k in shapes if k not in own)
    report.mismatched = sorted(f"{k}: checkpoint {shapes[k]} vs model {tuple(own[k])}"
                               for k in shapes if k in own and shapes[k] != tuple(own[k]))
    return report


def check_fits(report: LoadReport, name: object) -> None:
    """Raise :class:`StateDictMismatchError` listing missing, unexpected and differently shaped tensors."""
    if report.missing or report.unexpected or report.mismatched:
        parts = [f"{label} ({len(keys)}): {keys[:20]}{' ...' if len(keys) > 20 else ''}"
                 for label, keys in (("missing keys", report.missing), ("unexpected keys", report.unexpected),
                                     ("shape mismatches", report.mismatched)) if keys]
        raise StateDictMismatchError(f"checkpoint does not fit {name}: " + "; ".join(parts))


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
        model: a model whose ``pretrained_cfg`` names ``classifier`` and ``first_conv``.
        state_dict: the checkpoint's tensors.
        strict: raise :class:`StateDictMismatchError` listing missing/unexpected/mismatched keys; with
            ``False`` they are reported in the returned :class:`LoadReport` and skipped.
        adapt_head: the caller asked for another ``num_classes`` than the checkpoint's: the checkpoint's
            classifier is dropped and the model keeps its fresh one. The classifier's input features must
            still match (they are the body's output).
        adapt_stem: the caller asked for another ``in_chans``: the stem's filters are adapted.

    Tensors are never cast between float and integer kinds, and NaN/Inf values or negative BatchNorm
    variances are refused (:func:`check_tensor_values`).
    """
    cfg: Mapping[str, object] = getattr(model, "pretrained_cfg", {}) or {}
    own = model.state_dict()
    report = plan_state_dict({k: v.shape for k, v in own.items()}, {k: v.shape for k, v in state_dict.items()}, cfg,
                             num_classes=getattr(model, "num_classes", "?"), adapt_head=adapt_head,
                             adapt_stem=adapt_stem)
    if strict:
        check_fits(report, cfg.get("architecture", type(model).__name__))
    sd = {k: v for k, v in state_dict.items() if k not in set(report.dropped)}
    if report.stem is not None:
        sd[report.stem] = adapt_stem_weight(sd[report.stem], own[report.stem].shape[1])
    check_tensor_values(sd, own)
    for note in report.adapted:
        _logger.warning("adapting pretrained weights: %s", note)
    bad = {k.split(":")[0] for k in report.mismatched}
    model.load_state_dict({k: v for k, v in sd.items() if k in own and k not in bad}, strict=False)
    return report
