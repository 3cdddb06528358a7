"""The feature levels of any CNN: its ``feature_info`` (tglc_zoo and timm models), or found by running it.

A level is ``dict(num_chs=, reduction=, module=)`` as in timm's ``feature_info``. A model without
``feature_info`` (a torchvision CNN, or one converted by :func:`tglc_zoo.convert.create_grouped`) is run once on
a small input with forward hooks: each resolution's level is the output that the first module reducing it takes
in, named by the outermost module that returned it (``layer1``, not ``layer1.1.relu``), and the last level is
the deepest feature map.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelArgumentError

__all__ = ["PROBE_SIZE", "feature_levels", "input_channels"]

PROBE_SIZE = 64
"""The side of the input the levels of a model without ``feature_info`` are found with."""


def input_channels(model: nn.Module) -> int:
    """The input channels of ``model``'s first convolution."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ModelArgumentError(f"{type(model).__name__} has no Conv2d; a detection/segmentation backbone needs a CNN")
    return int(first.in_channels)


def feature_levels(model: nn.Module) -> list[dict[str, Any]]:
    """``model.feature_info`` when it lists levels, else the levels found by running the model once."""
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and all(isinstance(i, dict) and "module" in i for i in info):
        return [dict(num_chs=int(i["num_chs"]), reduction=int(i["reduction"]), module=str(i["module"])) for i in info]
    return _probe(model)


def _is_map(t: Any) -> bool:
    """An NCHW feature map of the square probe (not an NHWC tensor inside a block, nor anything else)."""
    return (isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[-1] == t.shape[-2]
            and PROBE_SIZE % t.shape[-1] == 0)


def _probe(model: nn.Module) -> list[dict[str, Any]]:
    """Run ``model`` once and name a level at each resolution the forward pass leaves: the tensor that the first
    module to reduce it takes as input (``layer2`` takes ``layer1``'s output, a stride-2 block its predecessor's),
    named by the outermost module that returned it; and the last feature map of at least 2×2."""
    started: list[tuple[str, torch.Tensor]] = []  # (module, its input), in the order modules start
    returned: list[tuple[str, torch.Tensor]] = []  # (module, its output), in the order modules finish

    def before(name: str):
        def record(_m: nn.Module, args: tuple[Any, ...]) -> None:
            if args and _is_map(args[0]):
                started.append((name, args[0]))
        return record

    def after(name: str):
        def record(_m: nn.Module, _i: Any, out: Any) -> None:
            if _is_map(out):
                returned.append((name, out))
        return record

    handles = []
    for name, module in model.named_modules():
        if name:
            handles += [module.register_forward_pre_hook(before(name)), module.register_forward_hook(after(name))]
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(1, input_channels(model), PROBE_SIZE, PROBE_SIZE,
                        device=param.device if param is not None else None,
                        dtype=param.dtype if param is not None and param.is_floating_point() else None)
        with torch.no_grad():
            model.eval()(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    def reduction(t: torch.Tensor) -> int:
        return round(PROBE_SIZE / t.shape[-1])

    outputs = dict(returned)  # each module's last output
    levels: list[dict[str, Any]] = []
    for name, t_in in started:
        if name not in outputs or not reduction(t_in) < reduction(outputs[name]) < PROBE_SIZE:
            continue  # not a module that reduces the resolution (a global pool, as in squeeze-excitation, is not)
        if levels and reduction(t_in) <= levels[-1]["reduction"]:
            continue  # a later module reducing from a resolution already taken
        producers = [(n.count("."), -i, n) for i, (n, t) in enumerate(returned) if t is t_in]
        if producers:
            module = min(producers)[2]  # the outermost; of equals, the last to finish
            levels.append(dict(num_chs=int(t_in.shape[1]), reduction=reduction(t_in), module=module))
    last = [(i, n, t) for i, (n, t) in enumerate(returned) if reduction(t) < PROBE_SIZE]
    if last:
        deepest = max(reduction(t) for _, _, t in last)
        _, name, t = max((i, n, t) for i, n, t in last if reduction(t) == deepest)
        if not levels or deepest > levels[-1]["reduction"]:
            levels.append(dict(num_chs=int(t.shape[1]), reduction=deepest, module=name))
    if not levels:
        raise ModelArgumentError(f"{type(model).__name__} computes no feature map of at least 2×2 on a "
                                 f"{PROBE_SIZE}×{PROBE_SIZE} input; a detection/segmentation backbone needs a CNN")
    return levels
