"""GC-2L: the two-level group convolution of eq. (3.5), ``A2L = R̄0ᵀ R0 + Agp``.

* ``conv``     — ``Agp``: the group convolution ``Conv2d(n, m, d, groups=N)``;
* ``restrict`` — ``R0`` (eq. 3.3): one representative channel per group, ``Conv2d(n, N, d0, groups=N)``
  with ``d0 = d`` and the same stride and padding as ``Agp``;
* ``coarse``   — ``R̄0ᵀ`` (eq. 3.4): the full 1×1 convolution ``Conv2d(N, m, 1)`` that mixes the
  N representatives back into every output channel.

Every implementation reads this one parameter layout (so checkpoints and the group-parallel sharding
do not depend on it); see :mod:`tglc_zoo.layers._gc2l_kernels` for what each computes:

* ``"split"``  — two grouped convolutions, the coarse 1×1 conv and an add (the reference form);
* ``"addmm"``  — group conv, ``R0`` as a depthwise conv + group sum, coarse product accumulated into the
  group-conv output (in place at inference);
* ``"fused"``  — ``Agp`` and ``R0`` as one grouped conv from n to m + N channels (section 3.2);
* ``"dense"``  — one dense conv with the composite weight (SC's cost, exact);
* ``"auto"`` (default) — per input shape, the implementation measured fastest for it on this device
  type, from the committed table of :mod:`tglc_zoo.layers.gc2l_impl` (no run-time autotuning).
"""
from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn

from . import _gc2l_kernels as kernels
from ._validate import IntOrPair, check_groups, resolve_padding
from .gc2l_impl import ShapeKey, choose_impl
from .init import he_init_

Impl = Literal["auto", "split", "addmm", "fused", "dense"]
IMPLS: tuple[str, ...] = ("auto", "split", "addmm", "fused", "dense")
DEFAULT_IMPL: Impl = "auto"
SCRIPTED_AUTO_IMPL = "split"  # what an unpinned "auto" layer runs under TorchScript (the reference form)
Pair = tuple[int, int]


@torch.compiler.assume_constant_result
def _auto_impl(device: str, channels_last: bool, training: bool, n: int, m: int, k: int, stride: int, groups: int,
               hw: int) -> str:
    """The table lookup, a constant for ``torch.compile`` (the graph is specialised to the shape anyway)."""
    return choose_impl(ShapeKey(device, channels_last, training, n, m, k, stride, groups, hw))


def auto_impl_for(x: torch.Tensor, weight: torch.Tensor, stride: Pair, padding: Pair, dilation: Pair,
                  groups: int) -> str:
    """The table's implementation for input ``x`` of a GC-2L layer whose ``Agp`` weight is ``weight``."""
    m, per_in, kh, kw = weight.shape
    h = (x.shape[-2] + 2 * padding[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    w = (x.shape[-1] + 2 * padding[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    training = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    channels_last = bool(x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
    return _auto_impl(x.device.type, channels_last, bool(training), per_in * groups, m, kh, stride[0], groups,
                      int(h * w))


def run_impl(impl: str, x: torch.Tensor, wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor,
             bias: torch.Tensor | None, stride: Pair, padding: Pair, groups: int, dilation: Pair) -> torch.Tensor:
    """The kernel ``impl`` (one of :data:`KERNEL_IMPLS`), as a chain TorchScript can compile."""
    if impl == "split":
        return kernels.split(x, wg, wr, wc, bias, stride, padding, groups, dilation)
    if impl == "addmm":
        return kernels.addmm(x, wg, wr, wc, bias, stride, padding, groups, dilation)
    if impl == "fused":
        return kernels.fused(x, wg, wr, wc, bias, stride, padding, groups, dilation)
    if impl == "dense":
        return kernels.dense(x, wg, wr, wc, bias, stride, padding, groups, dilation)
    raise ValueError("unknown GC-2L kernel '" + impl + "'; valid choices: ['split', 'addmm', 'fused', 'dense']")


def gc2l_forward(x: torch.Tensor, wg: torch.Tensor, wr: torch.Tensor, wc: torch.Tensor, bias: torch.Tensor | None,
                 stride: Pair, padding: Pair, groups: int, dilation: Pair, impl: str) -> torch.Tensor:
    """``Agp x + R̄0ᵀ R0 x`` with implementation ``impl`` (``"auto"``: the table's choice for ``x``).

    Traceable everywhere, computing exactly what eager mode computes:

    * FX (``torch.fx.symbolic_trace``, timm's and torchvision's feature extractors): this function is
      ``torch.fx.wrap``-ped, so a traced graph holds one call to it and the choice is still made per input
      when the graph runs.
    * TorchScript cannot read the table: a scripted ``"auto"`` layer runs :data:`SCRIPTED_AUTO_IMPL`;
      :func:`fix_impl` pins the table's choice into the layer before scripting or exporting.
    * ``torch.export`` / ONNX / ``torch.compile`` trace the Python: ``"auto"`` is resolved for the example
      input's shape and layout.
    """
    if torch.jit.is_scripting():  # "split" is SCRIPTED_AUTO_IMPL (TorchScript reads no module globals)
        return run_impl("split" if impl == "auto" else impl, x, wg, wr, wc, bias, stride, padding, groups, dilation)
    if impl == "auto":
        impl = auto_impl_for(x, wg, stride, padding, dilation, groups)
    return run_impl(impl, x, wg, wr, wc, bias, stride, padding, groups, dilation)


torch.fx.wrap("gc2l_forward")


class TwoLevelGroupConv2d(nn.Module):
    """Two-level group convolution ``y = Agp(x) + R̄0ᵀ(R0(x))`` (no bias or norm inside the coarse path)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair | None = None, groups: int = 1, bias: bool = False,
                 impl: Impl = DEFAULT_IMPL, dilation: IntOrPair = 1) -> None:
        super().__init__()
        check_groups(in_channels, out_channels, groups)
        if impl not in IMPLS:
            raise ValueError(f"unknown GC-2L impl {impl!r}; valid choices: {list(IMPLS)}")
        padding = resolve_padding(kernel_size, padding, dilation)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.impl: Impl = impl
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.restrict = nn.Conv2d(in_channels, groups, kernel_size, stride, padding, dilation, groups, bias=False)
        self.coarse = nn.Conv2d(groups, out_channels, 1, bias=False)
        for m in (self.conv, self.restrict, self.coarse):
            he_init_(m)
        # nn.Conv2d stores int kernel_size/stride/padding as pairs (its stubs say tuple[int, ...] / str)
        self.kernel_size = cast("tuple[int, int]", self.conv.kernel_size)
        self.stride = cast("tuple[int, int]", self.conv.stride)
        self.padding = cast("tuple[int, int]", self.conv.padding)
        self.dilation = cast("tuple[int, int]", self.conv.dilation)

    def fused_weight(self) -> torch.Tensor:
        """The (m + N, n/N, d, d) weight of the single grouped conv that computes ``Agp`` and ``R0``."""
        return kernels.fused_weight(self.conv.weight, self.restrict.weight, self.groups)

    def fused_bias(self) -> torch.Tensor | None:
        return kernels.fused_bias(self.conv.bias, self.groups)

    def composite_weight(self) -> torch.Tensor:
        """The dense (m, n, d, d) weight of the whole operator ``blockdiag(Agp) + R̄0ᵀ·R0``."""
        return kernels.composite_weight(self.conv.weight, self.restrict.weight, self.coarse.weight, self.groups)

    @torch.jit.ignore
    def resolve_impl(self, x: torch.Tensor) -> str:
        """The implementation that ``forward(x)`` runs (``impl``, or the table's choice for ``"auto"``)."""
        if self.impl != "auto":
            return self.impl
        return auto_impl_for(x, self.conv.weight, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gc2l_forward(x, self.conv.weight, self.restrict.weight, self.coarse.weight, self.conv.bias,
                            self.stride, self.padding, self.groups, self.dilation, self.impl)

    def extra_repr(self) -> str:
        extra = f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        return f"groups={self.groups}, impl={self.impl!r}{extra}"


def fix_impl(module: nn.Module, *example_inputs: torch.Tensor) -> dict[str, str]:
    """Pin every ``impl="auto"`` GC-2L layer of ``module`` to the implementation the table picks for it when
    ``module(*example_inputs)`` runs (in the current grad mode and memory format), in place.

    Export and TorchScript then run what eager mode ran for that input, and a graph no longer depends on
    the table. Returns ``{layer name: pinned impl}``.
    """
    chosen: dict[str, str] = {}
    handles = []
    for name, layer in module.named_modules():
        if isinstance(layer, TwoLevelGroupConv2d) and layer.impl == "auto":
            def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
                chosen[name] = cast(TwoLevelGroupConv2d, mod).resolve_impl(args[0])
            handles.append(layer.register_forward_pre_hook(hook))
    try:
        module(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    for name, impl in chosen.items():
        cast(TwoLevelGroupConv2d, module.get_submodule(name)).impl = cast(Impl, impl)
    return chosen
