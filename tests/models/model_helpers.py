"""Shared helpers of the model tests: eval outputs of a meaningful size, and relative comparisons."""
import torch
from torch import nn


def settle_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``x`` (one training forward, cumulative average)
    and return the model in eval mode.

    Freshly initialised, a deep net's eval outputs can be vanishingly small (MobileNetV2's are ~1e-10 with
    unit running variances), which would make any absolute tolerance pass; settled, they are O(1).
    """
    momenta = {}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            momenta[m] = m.momentum
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in momenta.items():
        m.momentum = momentum
    return model.eval()


def assert_rel_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5) -> None:
    """``max |got - want| <= rtol * max |want|``, with ``want`` of a meaningful size."""
    scale = float(want.abs().max())
    assert scale > 1e-3, f"reference output too small to compare against ({scale:.3g})"
    err = float((got - want).abs().max())
    assert err <= rtol * scale, f"max |diff| {err:.3g} > {rtol:g} x max |reference| {scale:.3g}"
