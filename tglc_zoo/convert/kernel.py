"""The dense kernel of a GC / GC-2L layer, and the error of approximating a dense kernel by it.

Notation (one layer): a dense ``d×d`` convolution from n to m channels with kernel ``W[m, n, d, d]``,
N groups, ``q = n/N`` input channels and ``m/N`` output channels per group. We flatten a kernel to
an ``m × D`` matrix with ``D = n·d²`` columns in channel-major order (the order of ``F.unfold`` and of
``weight.reshape(m, -1)``); the columns of input group k are ``[k·q·d², (k+1)·q·d²)``.

A GC-2L layer with ``Agp`` weight ``G[m, q, d, d]``, ``R0`` weight ``r[N, q, d, d]`` and ``R̄0ᵀ``
weight ``S[m, N]`` is *exactly* the dense convolution with kernel

    W₂ₗ[o, block k] = [k = g(o)]·G[o] + S[o, k]·r[k]                                      (★)

because ``R̄0ᵀ`` is a 1×1 convolution applied after ``R0``, which has ``Agp``'s kernel size, stride
and padding. (★) is what :func:`dense_kernel` assembles.

The error of an approximation ``A`` of ``W`` is measured with a symmetric positive semi-definite
``D × D`` matrix ``C``:  ``err(A) = Σ_o (W_o − A_o) C (W_o − A_o)ᵀ = tr(Δ C Δᵀ)``.

* ``C = I`` (no calibration): the squared Frobenius norm of the kernel difference. It equals the
  expected squared output error per output pixel for white-noise inputs (away from the borders),
  i.e. the Hilbert–Schmidt norm of the operator difference per pixel.
* ``C = E[x xᵀ]`` over the layer's real input patches ``x`` (``F.unfold`` columns): the mean squared
  output error ``E‖(W − A) ∗ X‖²`` per output pixel on that data.
"""
from __future__ import annotations

import torch


def check_divisible(weight: torch.Tensor, groups: int) -> None:
    if weight.dim() != 4:
        raise ValueError(f"expected a conv kernel of shape (m, n, d, d), got shape {tuple(weight.shape)}")
    m, n = weight.shape[:2]
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if m % groups or n % groups:
        valid = [g for g in range(1, min(m, n) + 1) if m % g == 0 and n % g == 0]
        raise ValueError(f"groups={groups} does not divide in_channels={n} and out_channels={m}; valid groups: {valid}")


def out_group(m: int, groups: int) -> torch.Tensor:
    """``g(o)`` for every output channel o."""
    return torch.arange(m) // (m // groups)


def diagonal_blocks(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The block-Jacobi part of a dense kernel: ``G[o] = W[o, block g(o)]``, shape ``(m, n/N, d, d)``."""
    check_divisible(weight, groups)
    m, n = weight.shape[:2]
    q = n // groups
    w = weight.reshape(groups, m // groups, groups, q, *weight.shape[2:])
    idx = torch.arange(groups)
    return w[idx, :, idx].reshape(m, q, *weight.shape[2:])


def dense_kernel(agp: torch.Tensor, groups: int, restrict: torch.Tensor | None = None,
                 coarse: torch.Tensor | None = None) -> torch.Tensor:
    """The dense ``(m, n, d, d)`` kernel (★) of a GC layer (``restrict``/``coarse`` None) or a GC-2L layer.

    Args:
        agp: ``(m, n/N, d, d)`` — the grouped conv weight.
        restrict: ``(N, n/N, d, d)`` — R0's weight.
        coarse: ``(m, N)`` or ``(m, N, 1, 1)`` — R̄0ᵀ's weight.
    """
    m, q = agp.shape[:2]
    n = q * groups
    dense = agp.new_zeros(m, groups, q, *agp.shape[2:])
    g = out_group(m, groups)
    dense[torch.arange(m), g] = agp
    if (restrict is None) != (coarse is None):
        raise ValueError("restrict and coarse must be given together (a GC-2L layer) or both omitted (a GC layer)")
    if restrict is not None and coarse is not None:
        s = coarse.reshape(m, groups).to(agp.dtype)
        dense = dense + torch.einsum("ok,kcij->okcij", s, restrict.to(agp.dtype))
    return dense.reshape(m, n, *agp.shape[2:])


def kernel_error(weight: torch.Tensor, approx: torch.Tensor, cov: torch.Tensor | None = None) -> float:
    """``tr(Δ C Δᵀ)`` with ``Δ = weight − approx`` flattened to ``m × D`` (``C = I`` when ``cov`` is None)."""
    delta = (weight.double() - approx.double()).reshape(weight.shape[0], -1)
    if cov is None:
        return float((delta * delta).sum())
    if cov.shape != (delta.shape[1], delta.shape[1]):
        raise ValueError(f"second-moment matrix has shape {tuple(cov.shape)}, expected "
                         f"{(delta.shape[1], delta.shape[1])} for a kernel of shape {tuple(weight.shape)}")
    return float(((delta @ cov.double()) * delta).sum())
