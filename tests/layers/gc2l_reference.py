"""GC-2L built from its formula (eq. 3.5): block-diagonal dense Agp and R0, then R̄0ᵀ — the tests' reference."""
import torch
import torch.nn.functional as F


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Dense (out, in, d, d) weight of a grouped conv: zero outside the diagonal blocks."""
    out_c, in_g = weight.shape[:2]
    dense = weight.new_zeros(out_c, in_g * groups, *weight.shape[2:])
    og = out_c // groups
    for k in range(groups):
        dense[k * og:(k + 1) * og, k * in_g:(k + 1) * in_g] = weight[k * og:(k + 1) * og]
    return dense


def reference(layer, x: torch.Tensor) -> torch.Tensor:
    """``Agp x + R̄0ᵀ (R0 x)`` with Agp and R0 as dense block-diagonal convs."""
    local = F.conv2d(x, block_diagonal(layer.conv.weight, layer.groups), layer.conv.bias, layer.stride,
                     layer.padding)
    reps = F.conv2d(x, block_diagonal(layer.restrict.weight, layer.groups), None, layer.stride, layer.padding)
    return local + F.conv2d(reps, layer.coarse.weight)
