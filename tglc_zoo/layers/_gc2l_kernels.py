"""Forward kernels of GC-2L, one function per implementation; all compute ``Agp x + R̄0ᵀ R0 x`` exactly.

They take the three weights of :class:`~tglc_zoo.layers.TwoLevelGroupConv2d` (``wg``: Agp, ``wr``: R0,
``wc``: R̄0ᵀ), so every implementation reads the same parameters and checkpoints never depend on the
choice. Plain autograd differentiates them; the in-place updates below only touch tensors whose values
no backward formula needs (a convolution or matmul output), so they are autograd- and compile-safe.

* :func:`split`   — ``Agp x + coarse(R0 x)`` as three convolutions and an add (the reference form).
* :func:`addmm`   — ``Agp x``, then ``R0 x`` as a depthwise conv and a sum over each group's channels,
  then the coarse 1×1 product accumulated *in place* into the group-conv output (``addmm_`` on the
  channels_last ``(pixels, channels)`` matrix, ``baddbmm_`` on NCHW): no coarse output tensor, no add.
* :func:`fused`   — ``Agp`` and ``R0`` as one grouped conv to ``m + N`` channels (section 3.2), then the
  coarse product written straight into the result and the local part added in place.
* :func:`dense`   — the whole operator as one dense conv with the composite weight
  ``blockdiag(Agp) + R̄0ᵀ·R0`` (exact: R̄0ᵀ is 1×1). Costs what SC costs; a floor where the backend's
  grouped kernels are slower than its dense ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Pair = tuple[int, int]


def _is_cl(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A channels_last (B, C, H, W) tensor as its (B·H·W, C) matrix — a view, so writes go through."""
    return t.permute(0, 2, 3, 1).view(-1, t.shape[1])


def restrict_depthwise(x: torch.Tensor, wr: torch.Tensor, stride: Pair, padding: Pair,
                       dilation: Pair = (1, 1)) -> torch.Tensor:
    """``R0 x``: a depthwise conv with R0's taps, then a sum over the channels of each group.

    Same FLOPs as the grouped ``Conv2d(n, N, d, groups=N)``, but backends have fast depthwise kernels
    and slow grouped kernels with one output channel per group.
    """
    n_groups, per_group = wr.shape[:2]
    n = n_groups * per_group
    taps = F.conv2d(x, wr.reshape(n, 1, wr.shape[2], wr.shape[3]), None, stride, padding, dilation, groups=n)
    b, _, h, w = taps.shape
    if _is_cl(taps):
        return taps.permute(0, 2, 3, 1).reshape(b, h, w, n_groups, per_group).sum(-1).permute(0, 3, 1, 2)
    return taps.reshape(b, n_groups, per_group, h, w).sum(2)


def add_coarse_(y: torch.Tensor, reps: torch.Tensor, wc: torch.Tensor) -> torch.Tensor:
    """``y += R̄0ᵀ reps`` in place (``wc``: (m, N, 1, 1)); returns ``y``."""
    m, n_groups = wc.shape[:2]
    w = wc.reshape(m, n_groups).to(y.dtype)
    reps = reps.to(y.dtype)
    b, _, h, wd = y.shape
    # In place only without autograd: an in-place op on a view makes autograd copy the whole gradient.
    inplace = not (torch.is_grad_enabled() and (y.requires_grad or reps.requires_grad or w.requires_grad))
    if _is_cl(y) and _is_cl(reps):
        if inplace:
            _rows(y).addmm_(_rows(reps), w.t())
        else:
            y = torch.addmm(_rows(y), _rows(reps), w.t()).view(b, h, wd, m).permute(0, 3, 1, 2)
    elif y.is_contiguous() and reps.is_contiguous():
        if inplace:
            y.view(b, m, h * wd).baddbmm_(w.expand(b, m, n_groups), reps.view(b, n_groups, h * wd))
        else:
            y = torch.baddbmm(y.view(b, m, h * wd), w.expand(b, m, n_groups),
                              reps.view(b, n_groups, h * wd)).view(b, m, h, wd)
    else:  # mixed layouts: correct, not fast
        y = y + F.conv2d(reps, w.reshape(m, n_groups, 1, 1))
    return y


def split(x: torch.Tensor, wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor, bias: torch.Tensor | None,
          stride: Pair, padding: Pair, groups: int, dilation: Pair = (1, 1)) -> torch.Tensor:
    local = F.conv2d(x, wg, bias, stride, padding, dilation, groups=groups)
    return local + F.conv2d(F.conv2d(x, wr, None, stride, padding, dilation, groups=groups), wc)


def addmm(x: torch.Tensor, wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor, bias: torch.Tensor | None,
          stride: Pair, padding: Pair, groups: int, dilation: Pair = (1, 1)) -> torch.Tensor:
    y = F.conv2d(x, wg, bias, stride, padding, dilation, groups=groups)
    return add_coarse_(y, restrict_depthwise(x, wr, stride, padding, dilation), wc)


def fused_weight(wg: torch.Tensor, wr: torch.Tensor, groups: int) -> torch.Tensor:
    """(m + N, n/N, d, d): group k's m/N filters followed by its representative's filter."""
    m, per_in, kh, kw = wg.shape
    w = wg.reshape(groups, m // groups, per_in, kh, kw)
    r = wr.reshape(groups, 1, per_in, kh, kw)
    return torch.cat((w, r), dim=1).reshape(-1, per_in, kh, kw)


def fused_bias(bias: torch.Tensor | None, groups: int) -> torch.Tensor | None:
    if bias is None:
        return None
    b = bias.reshape(groups, -1)
    return torch.cat((b, b.new_zeros(groups, 1)), dim=1).reshape(-1)


def fused(x: torch.Tensor, wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor, bias: torch.Tensor | None,
          stride: Pair, padding: Pair, groups: int, dilation: Pair = (1, 1)) -> torch.Tensor:
    out = F.conv2d(x, fused_weight(wg, wr, groups), fused_bias(bias, groups), stride, padding, dilation,
                   groups=groups)
    m = wg.shape[0]
    per = m // groups
    w = wc.reshape(m, groups).to(out.dtype)
    b, _, h, wd = out.shape
    # torch.split (not slicing): its backward is one cat into the fused layout, not zero-fill + copies
    if _is_cl(out):
        local, reps = torch.split(_rows(out).view(-1, groups, per + 1), [per, 1], dim=2)
        y = torch.mm(reps.squeeze(2), w.t())
        y.view(-1, groups, per).add_(local)
        return y.view(b, h, wd, m).permute(0, 3, 1, 2)
    local, reps = torch.split(out.reshape(b, groups, per + 1, h * wd), [per, 1], dim=2)
    y = torch.matmul(w, reps.squeeze(2))
    y.view(b, groups, per, h * wd).add_(local)
    return y.view(b, m, h, wd)


def composite_weight(wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor, groups: int) -> torch.Tensor:
    """Dense (m, n, d, d) weight of the whole operator: ``blockdiag(Agp) + R̄0ᵀ·R0``."""
    m, per_in, kh, kw = wg.shape
    per_out = m // groups
    local = wg.reshape(groups, per_out, per_in, kh, kw).permute(1, 2, 3, 4, 0)
    local = torch.diag_embed(local).permute(4, 0, 5, 1, 2, 3)  # (N, m/N, N, n/N, d, d), zero off the diagonal
    coarse = wc.reshape(groups, per_out, groups, 1, 1, 1) * wr.reshape(1, 1, groups, per_in, kh, kw)
    return (local + coarse).reshape(m, groups * per_in, kh, kw)


def dense(x: torch.Tensor, wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor, bias: torch.Tensor | None,
          stride: Pair, padding: Pair, groups: int, dilation: Pair = (1, 1)) -> torch.Tensor:
    return F.conv2d(x, composite_weight(wg, wr, wc, groups), bias, stride, padding, dilation)


KERNELS = {"split": split, "addmm": addmm, "fused": fused, "dense": dense}
