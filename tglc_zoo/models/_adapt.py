"""Adapting pretrained tensors to another input: the stem's filters and the per-channel normalisation.

:func:`adapt_stem_weight` sums a stem's filters to one input channel, or repeats them cyclically and
scales them by ``source / target`` channels, so a grey image repeated over the channels gives the same
stem output; :func:`adapt_channel_stats` adapts a mean or std the same way. Pure tensor code: the
builder's strict loading (:mod:`tglc_zoo.builder.load`) applies them when the user asks for another
``in_chans``.
"""
from __future__ import annotations

import math

import torch


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
