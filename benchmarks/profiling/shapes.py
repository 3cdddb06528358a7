"""The layer shapes to benchmark: every replaced conv of a model, read from the model itself."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from tglc_zoo.archs import ARCHS
from tglc_zoo.layers import StdConv2d

GRIDS: dict[str, str] = {"wrn28_10": "wrn28_10", "wrn34_2": "wrn34_2", "mobilenetv2": "mobilenetv2"}


@dataclass(frozen=True)
class ConvShape:
    """One replaced conv: ``n → m`` channels, ``k×k`` kernel, ``stride``, input ``h×w``."""

    grid: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    h: int
    w: int

    @property
    def out_hw(self) -> int:
        p = self.kernel_size // 2
        return (((self.h + 2 * p - self.kernel_size) // self.stride + 1)
                * ((self.w + 2 * p - self.kernel_size) // self.stride + 1))

    def label(self) -> str:
        s = f"/s{self.stride}" if self.stride > 1 else ""
        return f"{self.in_channels}->{self.out_channels} {self.kernel_size}x{self.kernel_size}{s} @{self.h}x{self.w}"

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def valid_groups(self, groups: int) -> bool:
        return self.in_channels % groups == 0 and self.out_channels % groups == 0


def model_conv_shapes(arch: str, kernel_sizes: tuple[int, ...] | None = None) -> list[ConvShape]:
    """The distinct shapes of the replaced convs of ``arch`` (its SC form) at its native input size."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {sorted(ARCHS)}")
    spec = ARCHS[arch]
    model = spec.model_cls(**spec.kwargs, conv_type="sc", groups=1, num_classes=spec.cfg.get("num_classes", 10))
    seen: dict[ConvShape, None] = {}

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        _, c, h, w = args[0].shape
        shape = ConvShape(arch, int(c), module.out_channels, module.kernel_size[0], module.stride[0], int(h), int(w))
        if kernel_sizes is None or shape.kernel_size in kernel_sizes:
            seen.setdefault(shape, None)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if type(m) is StdConv2d]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *spec.cfg["input_size"]))
    finally:
        for handle in handles:
            handle.remove()
    return list(seen)


def grid_shapes(grid: str) -> list[ConvShape]:
    """``wrn28_10`` / ``wrn34_2``: every replaced conv; ``mobilenetv2``: its (replaced) 1×1 convs."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; valid: {sorted(GRIDS)}")
    return model_conv_shapes(GRIDS[grid], (1,) if grid == "mobilenetv2" else None)
