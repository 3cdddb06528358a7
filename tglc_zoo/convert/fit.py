"""Fitting one dense convolution by a GC or GC-2L layer (see :mod:`.kernel` for the notation).

``block_jacobi``
    ``Agp`` keeps the diagonal blocks of ``W`` (eq. 2.7/2.9 of the paper); for GC-2L the coarse
    level is switched off (``R̄0ᵀ = 0``) while ``R0`` is set to the direction the optimal fit would
    use, so fine-tuning can grow the coarse level from there.

``optimal``, no calibration (``C = I``)
    Minimise ``‖W − W₂ₗ‖²_F`` over ``G, r, S`` in (★). Diagonal blocks are free (``G`` absorbs
    anything there), so the problem splits by input group k into a rank-1 approximation of the
    off-diagonal block column ``B_k = W[o ∉ group k, block k]`` (``(m − m/N) × (n/N)·d²``):

        min over s_k, r_k  ‖B_k − s_k r_kᵀ‖²_F   →   truncated SVD (Eckart–Young), exact optimum.

    So ``r_k`` is the top right singular vector of ``B_k``, ``S[o, k] = σ₁ u₁[o]`` for o outside
    group k, ``S[o, g(o)] = 0`` and ``G`` is the diagonal block of ``W``. For 1×1 convolutions this is
    the exact matrix problem; for d×d it is the same problem over the kernel tensor (each ``r_k`` is a
    whole ``(n/N)×d×d`` filter). The error is ``Σ_k Σ_{j≥2} σ_j(B_k)²`` against block Jacobi's
    ``Σ_k ‖B_k‖²``: never larger, strictly smaller whenever some ``B_k ≠ 0``.
    For GC the block-Jacobi kernel is already optimal.

``optimal`` with calibration (``C = E[x xᵀ]`` over real input patches)
    Minimise ``tr(Δ C Δᵀ)``. ``C`` couples the groups, so ``G``, ``S`` and ``r`` are refit jointly by
    alternating least squares, starting from the SVD solution above:

    1. fix ``r``: for every output group g, ``[G_o, S[o, k≠g]]`` for its outputs is a linear LS
       problem with normal matrix ``BᵀCB``, ``B = [I on block g | r_k embedded in block k, k ≠ g]``;
    2. fix ``G, S``: ``r`` (all groups at once, ``D = n·d²`` unknowns) solves
       ``(C ⊙ Ŝᵀ Ŝ) r = Σ_o Ŝ_o ⊙ (C (W_o − G_o))`` with ``Ŝ[o, j] = S[o, group of column j]``;
    3. rescale each pair ``(S[:, k], r_k)`` to equal norms (the product is unchanged).

    Each step minimises the objective exactly over its block of unknowns (a tiny ridge towards the
    current value keeps singular systems solvable), and the fit returned is the best point seen,
    the block-Jacobi point included — so its error is never above block Jacobi's in the same metric.
    For GC, step 1 with no coarse columns is the whole (exact) LS refit of ``Agp``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .kernel import check_divisible, dense_kernel, diagonal_blocks, kernel_error, out_group

Method = Literal["block_jacobi", "optimal"]
METHODS: tuple[str, ...] = ("block_jacobi", "optimal")
TARGET_TYPES: tuple[str, ...] = ("gc", "gc2l")
_RIDGE = 1e-10


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown conversion method {method!r}; valid choices: {list(METHODS)}")
    return method


def check_target_type(conv_type: str) -> str:
    if conv_type not in TARGET_TYPES:
        raise ValueError(f"cannot convert to conv_type {conv_type!r}; valid choices: {list(TARGET_TYPES)}")
    return conv_type


@dataclass
class ConvFit:
    """The weights of one converted layer and its errors (all in the metric of the fit)."""

    conv_type: str
    groups: int
    method: str
    calibrated: bool
    agp: torch.Tensor                 # (m, n/N, d, d)
    restrict: torch.Tensor | None     # (N, n/N, d, d), GC-2L only
    coarse: torch.Tensor | None       # (m, N), GC-2L only
    error: float                      # tr(Δ C Δᵀ) of this fit
    block_jacobi_error: float         # the same for block Jacobi
    reference: float                  # the same for the zero approximation (‖W‖² in the metric)
    iterations: int = 0

    @property
    def relative_error(self) -> float:
        return self.error / self.reference if self.reference > 0 else 0.0

    @property
    def relative_block_jacobi_error(self) -> float:
        return self.block_jacobi_error / self.reference if self.reference > 0 else 0.0

    def dense(self) -> torch.Tensor:
        """The dense kernel this fit computes."""
        return dense_kernel(self.agp, self.groups, self.restrict, self.coarse)


class _Problem:
    """One layer's data in the flattened ``m × D`` form, float64."""

    def __init__(self, weight: torch.Tensor, groups: int, cov: torch.Tensor | None) -> None:
        self.shape = tuple(weight.shape)
        self.m, self.n = weight.shape[:2]
        self.ksz = weight.shape[2] * weight.shape[3]
        self.N = groups
        self.q = self.n // groups
        self.p = self.q * self.ksz
        self.D = self.n * self.ksz
        self.W = weight.detach().double().reshape(self.m, self.D).cpu()
        self.C = None if cov is None else cov.detach().double().cpu()
        self.g = out_group(self.m, groups)
        self.rows = [torch.nonzero(self.g == k).flatten() for k in range(groups)]
        self.cols = [torch.arange(k * self.p, (k + 1) * self.p) for k in range(groups)]

    def diag(self) -> torch.Tensor:
        return self.W.reshape(self.m, self.N, self.p)[torch.arange(self.m), self.g]

    def assemble(self, G: torch.Tensor, S: torch.Tensor | None, R: torch.Tensor | None) -> torch.Tensor:
        A = torch.zeros(self.m, self.N, self.p, dtype=torch.float64)
        if S is not None and R is not None:
            A = torch.einsum("ok,kp->okp", S, R)
        A[torch.arange(self.m), self.g] += G
        return A.reshape(self.m, self.D)

    def error(self, A: torch.Tensor) -> float:
        delta = self.W - A
        if self.C is None:
            return float((delta * delta).sum())
        return float(((delta @ self.C) * delta).sum())


def _svd_coarse(pb: _Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input group k, the best rank-1 fit of the off-diagonal block column (``S``, ``R`` with unit rows)."""
    S = torch.zeros(pb.m, pb.N, dtype=torch.float64)
    R = torch.zeros(pb.N, pb.p, dtype=torch.float64)
    for k in range(pb.N):
        off = torch.nonzero(pb.g != k).flatten()
        block = pb.W[off][:, pb.cols[k]]
        if block.numel() and float(block.abs().max()) > 0:
            u, s, vh = torch.linalg.svd(block, full_matrices=False)
            r, scale = vh[0], s[0] * u[:, 0]
        else:  # no off-diagonal part (N = 1 or a zero block column): any direction, coarse term off
            column = pb.W[:, pb.cols[k]]
            r = (torch.linalg.svd(column, full_matrices=False)[2][0] if float(column.abs().max()) > 0
                 else torch.zeros(pb.p, dtype=torch.float64))
            scale = torch.zeros(len(off), dtype=torch.float64)
        sign = 1.0 if float(r[r.abs().argmax()]) >= 0 else -1.0  # deterministic sign
        R[k] = sign * r
        S[off, k] = sign * scale
    return S, R


def _balance(S: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale each pair (S[:, k], R[k]) to equal norms; S R is unchanged."""
    a, b = S.norm(dim=0), R.norm(dim=1)
    ok = (a > 0) & (b > 0)
    t = torch.where(ok, (a / torch.where(ok, b, torch.ones_like(b))).sqrt(), torch.ones_like(a))
    return S / t, R * t[:, None]


def _ridge_solve(H: torch.Tensor, rhs: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """argmin of the quadratic with Hessian H and optimum equation H z = rhs, with a tiny ridge towards z0."""
    lam = _RIDGE * max(float(H.diagonal().abs().mean()), 1e-300)
    A = H + lam * torch.eye(H.shape[0], dtype=H.dtype)
    b = rhs - H @ z0
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        return z0 + torch.cholesky_solve(b if b.dim() == 2 else b[:, None], L).reshape(b.shape)
    return z0 + torch.linalg.lstsq(A, b).solution


def _step_agp_coarse(pb: _Problem, G: torch.Tensor, S: torch.Tensor | None, R: torch.Tensor | None,
                     CW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Exact LS for ``G`` and ``S`` (off-diagonal entries) with ``R`` fixed."""
    assert pb.C is not None
    G, S = G.clone(), None if S is None else S.clone()
    if R is not None:
        Rfull = torch.zeros(pb.D, pb.N, dtype=torch.float64)
        for k in range(pb.N):
            Rfull[pb.cols[k], k] = R[k]
        CR = pb.C @ Rfull
        RCR = Rfull.T @ CR
        RCW = Rfull.T @ CW
    for g_ in range(pb.N):
        rows, cols = pb.rows[g_], pb.cols[g_]
        H = pb.C[cols][:, cols]
        rhs = CW[cols][:, rows]
        z0 = G[rows].T
        if R is not None and S is not None and pb.N > 1:
            others = torch.tensor([k for k in range(pb.N) if k != g_])
            cross = CR[cols][:, others]
            H = torch.cat([torch.cat([H, cross], 1), torch.cat([cross.T, RCR[others][:, others]], 1)], 0)
            rhs = torch.cat([rhs, RCW[others][:, rows]], 0)
            z0 = torch.cat([z0, S[rows][:, others].T], 0)
        z = _ridge_solve(H, rhs, z0)
        G[rows] = z[:pb.p].T
        if R is not None and S is not None and pb.N > 1:
            S[rows[:, None], others[None, :]] = z[pb.p:].T
    return G, S


def _step_restrict(pb: _Problem, G: torch.Tensor, S: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Exact LS for all rows of ``R`` at once with ``G`` and ``S`` fixed."""
    assert pb.C is not None
    Sexp = S.repeat_interleave(pb.p, dim=1)                       # m × D
    K = (S.T @ S).repeat_interleave(pb.p, 0).repeat_interleave(pb.p, 1)
    M = pb.C * K
    resid = pb.W - pb.assemble(G, None, None)
    rhs = (Sexp * (resid @ pb.C)).sum(0)
    return _ridge_solve(M, rhs, R.reshape(-1)).reshape(pb.N, pb.p)


def fit_conv(weight: torch.Tensor, groups: int, conv_type: str = "gc2l", method: str = "optimal",
             cov: torch.Tensor | None = None, *, max_iter: int = 30, tol: float = 1e-6) -> ConvFit:
    """Fit a dense kernel ``weight (m, n, d, d)`` by a GC or GC-2L layer with ``groups`` groups.

    Args:
        weight: the dense kernel.
        groups: N.
        conv_type: ``"gc"`` or ``"gc2l"``.
        method: ``"block_jacobi"`` or ``"optimal"`` (see the module docstring).
        cov: ``D × D`` second moment of the layer's input patches (``D = n·d²``, ``F.unfold`` order);
            ``None`` fits the raw kernel (Frobenius norm). Only ``method="optimal"`` uses it to fit;
            block Jacobi's errors are reported in the same metric either way.
        max_iter, tol: alternating least squares (calibrated GC-2L only): at most ``max_iter`` sweeps,
            stopping when a sweep lowers the error by less than ``tol`` relatively.
    """
    check_divisible(weight, groups)
    check_target_type(conv_type)
    check_method(method)
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter!r}")
    pb = _Problem(weight, groups, cov)
    if pb.C is not None and pb.C.shape != (pb.D, pb.D):
        raise ValueError(f"second-moment matrix has shape {tuple(pb.C.shape)}, expected {(pb.D, pb.D)} "
                         f"for a kernel of shape {pb.shape}")
    G_bj = pb.diag()
    err_bj = pb.error(pb.assemble(G_bj, None, None))
    reference = pb.error(torch.zeros_like(pb.W))
    two_level = conv_type == "gc2l"
    S = R = None
    if two_level:
        S, R = _balance(*_svd_coarse(pb))
    G, err, iters = G_bj, err_bj, 0
    if method == "block_jacobi":
        if S is not None:
            S = torch.zeros_like(S)
    elif pb.C is None:
        if two_level:
            err = pb.error(pb.assemble(G, S, R))
    else:
        CW = pb.C @ pb.W.T
        best = (err_bj, G_bj, None if S is None else torch.zeros_like(S), R)
        if two_level:
            e0 = pb.error(pb.assemble(G_bj, S, R))
            if e0 < best[0]:
                best = (e0, G_bj, S, R)
        cur_G, cur_S, cur_R, prev = best[1], best[2], best[3], best[0]
        for it in range(max(max_iter, 1) if two_level else 1):
            cur_G, cur_S = _step_agp_coarse(pb, cur_G, cur_S, cur_R, CW)
            if two_level:
                assert cur_S is not None and cur_R is not None  # GC-2L always has its coarse factors
                cur_R = _step_restrict(pb, cur_G, cur_S, cur_R)
                cur_S, cur_R = _balance(cur_S, cur_R)
            e = pb.error(pb.assemble(cur_G, cur_S, cur_R))
            iters = it + 1
            if e < best[0]:
                best = (e, cur_G, cur_S, cur_R)
            if prev - e <= tol * max(prev, 1e-300):
                break
            prev = e
        err, G, S, R = best
        if S is None and two_level:
            S = torch.zeros(pb.m, pb.N, dtype=torch.float64)
    dtype = weight.dtype
    shape = (pb.m, pb.q, *pb.shape[2:])
    return ConvFit(
        conv_type=conv_type, groups=groups, method=method, calibrated=pb.C is not None,
        agp=G.reshape(shape).to(dtype),
        restrict=None if R is None else R.reshape(pb.N, pb.q, *pb.shape[2:]).to(dtype),
        coarse=None if S is None else S.to(dtype),
        error=err, block_jacobi_error=err_bj, reference=reference, iterations=iters)


__all__ = ["ConvFit", "METHODS", "TARGET_TYPES", "Method", "check_method", "check_target_type", "fit_conv",
           "diagonal_blocks", "kernel_error"]
