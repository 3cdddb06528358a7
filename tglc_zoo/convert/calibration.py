"""Second moments of the input patches of convolution layers, collected on real data.

For a layer with kernel ``d×d``, stride and padding, every output pixel sees one input patch
``x ∈ R^{n·d²}`` (a column of ``F.unfold``, channel-major, the order of ``weight.reshape(m, -1)``).
``C = E[x xᵀ]`` over all patches of all calibration images turns the kernel error into the mean
squared output error: ``E‖(W − A) x‖² = tr((W − A) C (W − A)ᵀ)``.

Calibration data must be finite: a batch holding NaN or inf is refused as it is read
(:func:`iter_batches`), and so is a moment that comes out non-finite (a model that overflows on the data).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .spec import ConversionError
from .surgery import conv_geometry

CalibrationData = torch.Tensor | Iterable[Any]
DEFAULT_BATCH_SIZE = 64
DEFAULT_MEMORY_BYTES = 1 << 30


def _inputs(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, Mapping) and isinstance(batch.get("image", batch.get("input")), torch.Tensor):
        return batch.get("image", batch.get("input"))
    raise TypeError(f"calibration batches must be image tensors, (images, labels, ...) tuples or dicts with "
                    f"'image'/'input'; got {type(batch).__name__}")


def _finite(index: int, images: torch.Tensor) -> torch.Tensor:
    bad = int((~torch.isfinite(images)).sum()) if images.is_floating_point() else 0
    if bad:
        raise ConversionError(f"calibration batch {index} (shape {tuple(images.shape)}) holds {bad} non-finite values "
                              "(NaN or inf); calibration images must be finite")
    return images


def iter_batches(data: CalibrationData, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[torch.Tensor]:
    """Image batches from a tensor ``(B, C, H, W)`` (split into ``batch_size`` chunks) or an iterable
    of batches (a ``DataLoader``, a list of tensors or of ``(images, labels)`` pairs), each checked to be
    finite (:class:`~.spec.ConversionError` naming the batch otherwise)."""
    if isinstance(data, torch.Tensor):
        if data.dim() != 4:
            raise ValueError(f"calibration tensor must be (B, C, H, W), got shape {tuple(data.shape)}")
        batches: Iterable[Any] = data.split(batch_size)
    else:
        batches = (_inputs(batch) for batch in data)
    for i, images in enumerate(batches):
        yield _finite(i, images)


def reiterable(data: CalibrationData) -> CalibrationData:
    """``data`` itself when it can be iterated again, otherwise its batches in a list."""
    if isinstance(data, torch.Tensor) or iter(data) is not data:
        return data
    return list(data)  # a one-shot iterator (e.g. a generator)


@contextmanager
def modes_restored(model: nn.Module) -> Iterator[nn.Module]:
    """``model``, with every module's train/eval mode put back on exit (``model.train(was)`` would set them all,
    and a frozen BatchNorm kept in eval mode inside a training model would come back in training mode)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _patch_dim(conv: nn.Conv2d) -> int:
    return conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]


def input_moments(model: nn.Module, layers: Mapping[str, nn.Conv2d], data: CalibrationData, *,
                  batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int | None = None,
                  memory_bytes: int = DEFAULT_MEMORY_BYTES) -> dict[str, torch.Tensor]:
    """``{name: E[x xᵀ]}`` (float64, ``D × D``) of the input patches of each ``layers[name]`` of ``model``.

    The model runs in eval mode under ``torch.no_grad`` (every module's mode is restored). Layers are processed in
    chunks whose matrices fit ``memory_bytes``; each chunk is one pass over ``data``.
    """
    for name, conv in layers.items():
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            raise TypeError(f"layer {name!r} is not a dense nn.Conv2d (got {type(conv).__name__})")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1, got {max_batches!r}")
    data = reiterable(data)
    chunks: list[list[str]] = [[]]
    used = 0
    for name, conv in layers.items():
        size = _patch_dim(conv) ** 2 * 8
        if chunks[-1] and used + size > memory_bytes:
            chunks.append([])
            used = 0
        chunks[-1].append(name)
        used += size
    moments: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device
    with modes_restored(model):
        model.eval()
        for chunk in chunks:
            moments.update(_one_pass(model, {n: layers[n] for n in chunk}, data, batch_size, max_batches, device))
    return moments


def _one_pass(model: nn.Module, layers: Mapping[str, nn.Conv2d], data: CalibrationData, batch_size: int,
              max_batches: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    sums = {n: torch.zeros(_patch_dim(c), _patch_dim(c), dtype=torch.float64) for n, c in layers.items()}
    counts = dict.fromkeys(layers, 0)

    def hook(name: str, conv: nn.Conv2d):
        def pre(_module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach().float()
            padding = conv_geometry(conv)
            if padding is None:
                raise ValueError(f"layer {name!r}: padding={conv.padding!r} has no symmetric integer form")
            cols = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride)
            patches = cols.transpose(1, 2).reshape(-1, cols.shape[1])
            sums[name] += (patches.T @ patches).double().cpu()
            counts[name] += patches.shape[0]
        return pre

    handles = [c.register_forward_pre_hook(hook(n, c)) for n, c in layers.items()]
    try:
        with torch.no_grad():
            for i, x in enumerate(iter_batches(data, batch_size)):
                if max_batches is not None and i >= max_batches:
                    break
                model(x.to(device))
    finally:
        for h in handles:
            h.remove()
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise ValueError(f"calibration data produced no input for layers {empty}; is it empty?")
    bad = [n for n in layers if not bool(torch.isfinite(sums[n]).all())]
    if bad:
        raise ConversionError(f"the inputs of layers {bad[:5]} are not finite on the calibration data (the source "
                              "model produces NaN or inf from finite images); no layer can be fitted to them")
    return {n: sums[n] / counts[n] for n in layers}


def dataset_images(name: str, count: int, *, data_dir: str | None = None, seed: int = 0,
                   exclude: int = 0) -> torch.Tensor:
    """``count`` normalised training images of a :mod:`tglc_zoo.data` dataset (no augmentation).

    They are drawn at random (``seed``) from the training split; ``exclude`` leaves the first
    ``exclude`` indices of that random order out (so a study can keep calibration images apart from
    its fine-tuning subset).
    """
    from ..data import build_datasets

    if count < 1:
        raise ValueError(f"the number of calibration images must be >= 1, got {count!r}")
    train, _, _ = build_datasets(name, data_dir, augment=False)
    # the zoo's datasets are map-style, with a length (torch's Dataset does not declare __len__)
    order = torch.randperm(len(cast(Sized, train)), generator=torch.Generator().manual_seed(seed))
    if exclude + count > len(cast(Sized, train)):
        raise ValueError(f"{name} has {len(cast(Sized, train))} training images; cannot take {count} after "
                         f"excluding {exclude}")
    return torch.stack([train[int(i)][0] for i in order[exclude:exclude + count]])
