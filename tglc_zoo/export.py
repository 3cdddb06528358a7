"""Exports for deployment: ONNX (checked in onnxruntime against eager), ``torch.export`` and TorchScript.

Every exporter works on a copy prepared for inference by :func:`prepare_for_export`: eval mode, FLGC
layers deployed (real grouped convolutions, :func:`tglc_zoo.layers.deploy`) and every GC-2L layer's
``impl="auto"`` pinned to the implementation the table picks for the export input
(:func:`tglc_zoo.layers.fix_impl`), so the graph computes what eager inference computes for that input and
no longer consults the table. The batch dimension stays dynamic.

ONNX needs ``pip install onnx onnxruntime onnxscript`` (the ``dev`` extra); the rest only torch.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ExportError
from .layers import deploy, fix_impl
from .util.atomic import atomic_path, atomic_write_json

__all__ = ["ONNX_PACKAGES", "OnnxCheck", "example_input", "prepare_for_export", "export_program",
           "export_torchscript", "export_onnx", "input_config", "export_folder"]

ONNX_PACKAGES = "onnx onnxruntime onnxscript"
ONNX_FILE, CONFIG_FILE = "model.onnx", "input_config.json"
_MAX_BATCH = 4096


@dataclass(frozen=True)
class OnnxCheck:
    """onnxruntime (CPU) against the eager model on random inputs of each batch size."""

    max_abs_diff: float
    atol: float
    batch_sizes: tuple[int, ...]
    opset: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.atol


def example_input(model: nn.Module, batch: int = 2, input_size: tuple[int, ...] | None = None,
                  seed: int = 0) -> torch.Tensor:
    """A random batch of the model's input size (``pretrained_cfg["input_size"]`` unless given)."""
    size = tuple(input_size or getattr(model, "pretrained_cfg", {}).get("input_size") or ())
    if len(size) != 3:
        raise ExportError(f"cannot tell the input size of {type(model).__name__}: its pretrained_cfg has "
                          f"input_size={size or None}; pass input_size=(C, H, W)")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    return torch.randn(batch, *size, generator=generator).to(device)


def prepare_for_export(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """An inference copy of ``model``: eval mode, FLGC deployed, GC-2L implementations pinned for ``example``."""
    prepared = deploy(model).eval()  # a copy, FLGC layers replaced
    with torch.no_grad():
        fix_impl(prepared, example)
    return prepared


def export_program(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True
                   ) -> torch.export.ExportedProgram:
    """``torch.export.export`` of the prepared model (batch dimension dynamic unless ``dynamic_batch=False``)."""
    if dynamic_batch and example.shape[0] < 2:
        raise ExportError("a dynamic batch needs an example batch of at least 2 (torch.export specialises "
                          f"size 1), got {tuple(example.shape)}")
    prepared = prepare_for_export(model, example)
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    return torch.export.export(prepared, (example,), dynamic_shapes=({0: batch},) if dynamic_batch else None)


def export_torchscript(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of the prepared model."""
    return torch.jit.script(prepare_for_export(model, example))


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as e:
        raise ExportError(f"ONNX export needs {e.name}: pip install {ONNX_PACKAGES} "
                          "(or pip install 'tglc_zoo[dev]')") from None
    return onnx, onnxruntime


def _outputs(y: Any) -> list[torch.Tensor]:
    return list(y) if isinstance(y, (list, tuple)) else [y]


def export_onnx(model: nn.Module, path: str | os.PathLike[str], input_size: tuple[int, ...] | None = None, *,
                opset: int | None = None, atol: float = 1e-4, check_batches: tuple[int, ...] = (1, 3)
                ) -> OnnxCheck:
    """Write ``model`` as ONNX to ``path`` (atomically) and check it in onnxruntime against eager.

    The input is ``input`` (N, C, H, W) with a dynamic batch; the output is ``output`` (or ``output.<i>``
    for each level of a feature backbone). The check runs both on random batches of ``check_batches``
    sizes and raises :class:`~tglc_zoo.errors.ExportError` when they differ by more than ``atol``.
    """
    onnx, ort = _require_onnx()
    example = example_input(model, 2, input_size)
    prepared = prepare_for_export(model, example)
    with torch.no_grad():
        n_out = len(_outputs(prepared(example)))
    names = ["output"] if n_out == 1 else [f"output.{i}" for i in range(n_out)]
    try:
        program = torch.onnx.export(prepared, (example,), dynamo=True, input_names=["input"], output_names=names,
                                    dynamic_shapes=({0: "batch"},), opset_version=opset, verbose=False)
    except Exception as e:  # the exporter's own errors are many types; name the model and keep the cause
        raise ExportError(f"torch.onnx.export of {type(model).__name__} failed: {type(e).__name__}: {e}") from e
    assert program is not None  # dynamo=True always returns the program
    with atomic_path(path) as tmp:
        program.save(str(tmp), external_data=False)
    onnx.checker.check_model(str(path))
    opset_used = next(o.version for o in onnx.load(str(path), load_external_data=False).opset_import
                      if o.domain in ("", "ai.onnx"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = copy.deepcopy(model).eval()
    worst = 0.0
    for i, batch in enumerate(check_batches):
        x = example_input(model, batch, input_size, seed=i + 1)
        with torch.no_grad():
            want = _outputs(reference(x))
        got = session.run(None, {"input": x.cpu().numpy()})
        for w, g in zip(want, got):
            worst = max(worst, float((w.cpu() - torch.from_numpy(g)).abs().max()))
    check = OnnxCheck(worst, atol, tuple(check_batches), opset_used)
    if not check.ok:
        raise ExportError(f"{path}: onnxruntime differs from eager by {worst:.3g} (> atol {atol:g}) on batches "
                          f"{list(check_batches)}")
    return check


def input_config(model: nn.Module) -> dict[str, Any]:
    """What a consumer of the exported model needs to feed it: timm's data config (input size, interpolation,
    mean, std, crop) and the model's identity, classes and input/output names."""
    from timm.data import resolve_data_config

    cfg = getattr(model, "pretrained_cfg", {}) or {}
    data = resolve_data_config({}, model=model)
    out: dict[str, Any] = {
        "architecture": cfg.get("architecture"),
        "tag": cfg.get("tag"),
        "input_name": "input",
        "input_layout": "NCHW",
        **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()},
        "num_classes": getattr(model, "num_classes", cfg.get("num_classes")),
    }
    if cfg.get("label_names"):
        out["label_names"] = list(cfg["label_names"])
    return out


def export_folder(model: nn.Module, folder: str | os.PathLike[str], *, opset: int | None = None,
                  atol: float = 1e-4) -> tuple[Path, OnnxCheck]:
    """``folder/model.onnx`` (checked, see :func:`export_onnx`) and ``folder/input_config.json``."""
    folder = Path(folder)
    check = export_onnx(model, folder / ONNX_FILE, opset=opset, atol=atol)
    config = {**input_config(model), "onnx": {"file": ONNX_FILE, "opset": check.opset,
                                              "max_abs_diff_vs_eager": check.max_abs_diff,
                                              "checked_batches": list(check.batch_sizes)}}
    atomic_write_json(folder / CONFIG_FILE, config)
    return folder, check
