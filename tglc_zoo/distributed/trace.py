"""Tracing a model for group parallelism: its ``torch.fx`` graphs in training and in evaluation mode, with shapes.

The tracer keeps whole every module whose channel behaviour is known (:func:`.ops.is_leaf`: convolutions,
normalisations, activations, pooling, dropout, GC-2L, ...) and traces through the rest (blocks, stages,
squeeze-excitation, heads). A trace freezes Python control flow, including branches on
``self.training`` inside traced-through modules, so the model is traced twice: once in training mode,
once in evaluation mode. Shapes come from running each graph on fake tensors (no computation, no memory,
meta-device models included).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.fake_tensor_prop import FakeTensorProp

from ..errors import GroupParallelError
from .ops import is_leaf

__all__ = ["GroupTracer", "TracedModel", "trace_model", "example_shape"]


class GroupTracer(fx.Tracer):
    """``torch.fx`` tracer whose leaves are the modules group parallelism knows how to split."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m) or super().is_leaf_module(m, module_qualified_name)


@dataclass
class TracedModel:
    """The model's graphs by mode (``"train"``, ``"eval"``), each node carrying ``meta["val"]`` (fake values)."""

    graphs: dict[str, fx.Graph]
    input_shape: tuple[int, ...]


def example_shape(model: nn.Module, example_input: Sequence[int] | torch.Tensor | None) -> tuple[int, ...]:
    """``(B, C, H, W)`` to trace with: the given shape / tensor, else the model's data config at batch 2."""
    if isinstance(example_input, torch.Tensor):
        return tuple(example_input.shape)
    if example_input is not None:
        return tuple(int(v) for v in example_input)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = tuple(cfg.get("input_size") or (3, 224, 224))
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    chans = first.in_channels if first is not None else size[0]
    return (2, chans, *size[1:])


def _trace(model: nn.Module, training: bool) -> fx.Graph:
    flags = {m: m.training for m in model.modules()}
    model.train(training)
    try:
        return GroupTracer().trace(model)
    except Exception as e:
        raise GroupParallelError(
            f"torch.fx cannot trace {type(model).__name__} ({'train' if training else 'eval'} mode): "
            f"{type(e).__name__}: {e}. Group parallelism follows the model's traced graph; make its forward "
            "symbolically traceable") from e
    finally:
        for m, flag in flags.items():
            m.training = flag


def _propagate(model: nn.Module, graph: fx.Graph, shape: tuple[int, ...], training: bool) -> None:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    flags = {m: m.training for m in model.modules()}
    # fake tensors still update real buffers in place (BatchNorm's num_batches_tracked): keep them
    saved = [(b, b.clone()) for b in model.buffers() if b.device.type != "meta"]
    model.train(training)
    try:
        gm = fx.GraphModule(model, graph)
        mode = FakeTensorMode(allow_non_fake_inputs=True)
        with torch.device("meta") if device.type == "meta" else torch.device(device):
            x = torch.zeros(shape, dtype=dtype)
        FakeTensorProp(gm, mode).propagate(mode.from_tensor(x))
    except Exception as e:
        raise GroupParallelError(f"{type(model).__name__} does not run on an input of shape {shape} "
                                 f"({type(e).__name__}: {e}); pass example_input=(B, C, H, W) that it accepts") from e
    finally:
        for m, flag in flags.items():
            m.training = flag
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def trace_model(model: nn.Module, example_input: Sequence[int] | torch.Tensor | None = None) -> TracedModel:
    """Trace ``model`` in both modes and attach fake-tensor shapes to every node."""
    shape = example_shape(model, example_input)
    graphs: dict[str, fx.Graph] = {}
    for mode, training in (("train", True), ("eval", False)):
        graph = _trace(model, training)
        _propagate(model, graph, shape, training)
        graphs[mode] = graph
    return TracedModel(graphs, shape)
