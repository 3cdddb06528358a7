"""Re-estimating BatchNorm statistics after conversion.

A converted layer computes a slightly different function, so the BatchNorm running statistics
copied from the dense model no longer match the activations they normalise. Re-estimating them on a
few hundred training images (no gradients, no labels) is the cheapest repair; it is a separate step,
so that the conversion itself copies BatchNorm unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .calibration import DEFAULT_BATCH_SIZE, CalibrationData, iter_batches, reiterable


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: CalibrationData, *, batch_size: int = DEFAULT_BATCH_SIZE,
                          max_batches: int | None = None) -> nn.Module:
    """Replace every BatchNorm's running mean/variance by their average over ``data`` (in place).

    Only the BatchNorm layers run in training mode (dropout and the rest stay in eval mode); each
    layer's statistics are the cumulative average over all batches (``momentum=None``). The model's
    mode and the layers' momenta are restored. Returns ``model``.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers with running statistics to re-estimate")
    was_training = model.training
    momenta = [m.momentum for m in norms]
    device = next(model.parameters()).device
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        for i, x in enumerate(iter_batches(reiterable(data), batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            model(x.to(device))
            seen += 1
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        model.train(was_training)
    if seen == 0:
        raise ValueError("recalibrate_batchnorm got no batches; is the data empty?")
    return model
