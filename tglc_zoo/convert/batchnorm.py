"""Re-estimating BatchNorm statistics after conversion.

A converted layer computes a slightly different function, so the BatchNorm running statistics
copied from the dense model no longer match the activations they normalise. Re-estimating them on a
few hundred training images (no gradients, no labels) is the cheapest repair; it is a separate step,
so that the conversion itself copies BatchNorm unchanged. Statistics are only ever replaced by finite
ones: non-finite images are refused as they are read, and if the new statistics come out NaN or inf
(a model that overflows on the data) the previous ones are put back and the error names the layers.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .calibration import DEFAULT_BATCH_SIZE, CalibrationData, iter_batches, modes_restored, reiterable
from .spec import ConversionError


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: CalibrationData, *, batch_size: int = DEFAULT_BATCH_SIZE,
                          max_batches: int | None = None) -> nn.Module:
    """Replace every BatchNorm's running mean/variance by their average over ``data`` (in place).

    Only the BatchNorm layers run in training mode (dropout and the rest stay in eval mode); each
    layer's statistics are the cumulative average over all batches (``momentum=None``). The model's
    mode and the layers' momenta are restored, and so are the previous statistics when anything fails
    (non-finite images or statistics: :class:`~.spec.ConversionError`). Returns ``model``.
    """
    norms = {n: m for n, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats}
    if not norms:
        raise ConversionError(f"{type(model).__name__} has no BatchNorm layers with running statistics to "
                              "re-estimate")
    momenta = {n: m.momentum for n, m in norms.items()}
    saved = {n: {k: b.clone() for k, b in m.named_buffers(recurse=False)} for n, m in norms.items()}
    with modes_restored(model):
        model.eval()
        for m in norms.values():
            m.reset_running_stats()
            m.momentum = None
            m.train()
        try:
            _estimate(model, norms, data, batch_size, max_batches)
        except BaseException:
            for n, m in norms.items():
                for k, b in m.named_buffers(recurse=False):
                    b.copy_(saved[n][k])
            raise
        finally:
            for n, m in norms.items():
                m.momentum = momenta[n]
    return model


def _estimate(model: nn.Module, norms: Mapping[str, nn.Module], data: CalibrationData, batch_size: int,
              max_batches: int | None) -> None:
    """Run ``data`` through ``model`` and check that the statistics of ``norms`` came out finite."""
    device = next(model.parameters()).device
    seen = 0
    for i, x in enumerate(iter_batches(reiterable(data), batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        model(x.to(device))
        seen += 1
    if seen == 0:
        raise ConversionError("recalibrate_batchnorm got no batches; is the data empty?")
    bad = [n for n, m in norms.items() if not all(bool(torch.isfinite(b).all()) for b in m.buffers(recurse=False))]
    if bad:
        raise ConversionError(f"re-estimated BatchNorm statistics of {bad[:5]} are not finite (the model produces "
                              "NaN or inf on this data); the previous statistics are kept")
