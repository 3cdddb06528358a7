"""An analytic cost model of one training step of CIFAR WRN-28-k: group parallel vs the alternatives.

Strategies, each on P devices (P = N for group parallelism):

* ``group``  — GC-2L with N groups split over N devices (this package): device k runs group k of every
  layer on the whole batch. Per GC-2L layer, one ring all-gather of B×1×H×W floats per device
  forward and one reduce-scatter backward; the pooled features are all-gathered once.
* ``data``   — data parallelism over the *same* GC-2L-N network: a full replica per device, B/P images
  each, a ring all-reduce of all gradients per step.
* ``layer``  — naive layer-wise model parallelism of the SC network (the paper's baseline for WRN-28-60/80
  in Table 2): consecutive blocks on consecutive devices, balanced by parameters, no pipelining — one
  device works at a time; activations (forward) and their gradients (backward) cross each boundary.

Per-layer channel counts come from the WRN definition (``layers``), checked against the real model's
parameter count. FLOPs count multiply-adds ×2 of the convolutions and the classifier, a training step
being 3× the forward. Memory per device = parameters × (weight + gradient + momentum) + autograd-saved
activations; activation bytes per image come from measurements (``activation_bytes_per_image``), not
from a formula. Time = FLOPs / (peak × efficiency) + Σ messages × latency + bytes / bandwidth, no overlap.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ConvLayer", "Device", "wrn_cifar_layers", "param_count", "forward_flops", "group_comm_bytes",
           "project", "device_dict", "STRATEGIES"]

STRATEGIES: tuple[str, ...] = ("group", "data", "layer")
FLOAT_BYTES = 4


@dataclass(frozen=True)
class ConvLayer:
    """One replaced convolution (or the stem), with its output resolution, and the block it belongs to."""

    cin: int
    cout: int
    k: int
    hw_out: int  # output height = width
    block: int  # 0 = stem, 1.. = residual blocks, -1 = head
    replaced: bool = True


@dataclass(frozen=True)
class Device:
    """A device and its link: sustained FLOP/s = peak × efficiency; ring collectives over ``bandwidth``."""

    name: str = "V100-32GB, PCIe 3.0 x16"
    peak_flops: float = 15.7e12
    efficiency: float = 0.5
    bandwidth: float = 12e9  # bytes/s per direction per device
    latency: float = 20e-6  # seconds per message
    memory: float = 32 * 2**30


def wrn_cifar_layers(depth: int, k: int, stem_chs: int = 16, image_size: int = 32) -> list[ConvLayer]:
    """The convolutions of CIFAR WRN-depth-k (README "Models") in order; ``stem_chs`` may be widened (see project)."""
    n = (depth - 4) // 6
    layers = [ConvLayer(3, stem_chs, 3, image_size, 0, replaced=False)]
    cin, block = stem_chs, 0
    for i, (width, stride) in enumerate(zip((16 * k, 32 * k, 64 * k), (1, 2, 2))):
        hw = image_size // (2 ** i)
        for j in range(n):
            block += 1
            s = stride if j == 0 else 1
            layers.append(ConvLayer(cin, width, 3, hw, block))
            layers.append(ConvLayer(width, width, 3, hw, block))
            if s != 1 or cin != width:
                layers.append(ConvLayer(cin, width, 1, hw, block))
            cin = width
    return layers


def _conv_params(layer: ConvLayer, conv_type: str, groups: int) -> int:
    full = layer.cin * layer.cout * layer.k ** 2
    if not layer.replaced or conv_type == "sc":
        return full
    if conv_type == "gc":
        return full // groups
    return full // groups + layer.cin * layer.k ** 2 + groups * layer.cout  # + R0 + R̄0ᵀ


def param_count(layers: list[ConvLayer], conv_type: str, groups: int, num_classes: int = 10) -> int:
    """Parameters of the whole network: convs, BatchNorms (bn1, bn2 per block, the final one), classifier."""
    convs = sum(_conv_params(layer, conv_type, groups) for layer in layers)
    bn = 0
    for b in sorted({layer.block for layer in layers if layer.block > 0}):
        first = next(layer for layer in layers if layer.block == b)
        bn += first.cin + first.cout
    width = layers[-1].cout
    return convs + 2 * (bn + width) + width * num_classes + num_classes


def forward_flops(layers: list[ConvLayer], conv_type: str, groups: int, num_classes: int = 10) -> float:
    """Forward FLOPs per image (2 × multiply-adds of convolutions and classifier)."""
    conv = sum(2.0 * layer.hw_out ** 2 * _conv_params(layer, conv_type, groups) for layer in layers)
    return conv + 2.0 * layers[-1].cout * num_classes


def group_comm_bytes(layers: list[ConvLayer], groups: int, batch: int, dtype_bytes: int = FLOAT_BYTES,
                     conv_type: str = "gc2l") -> int:
    """Bytes one device sends per training step under group parallelism (ring collectives).

    Per GC-2L layer: all-gather (forward) and reduce-scatter (backward) of one B×H×W channel per device,
    each sending (N − 1) chunks; plus the all-gather of the pooled features (B × C/N per device).
    GC layers send nothing.
    """
    n = groups
    per_layer = sum(2 * (n - 1) * batch * layer.hw_out ** 2 * dtype_bytes for layer in layers
                    if layer.replaced and conv_type == "gc2l")
    return per_layer + (n - 1) * batch * (layers[-1].cout // n) * dtype_bytes


def _messages_group(layers: list[ConvLayer], n: int) -> int:
    return sum(2 * (n - 1) for layer in layers if layer.replaced) + (n - 1)


def _layer_stages(layers: list[ConvLayer], conv_type: str, groups: int, devices: int
                  ) -> list[list[int]]:
    """Blocks per device, consecutive, balanced by parameters (greedy)."""
    blocks = sorted({layer.block for layer in layers})
    weights = {b: sum(_conv_params(x, conv_type, groups) for x in layers if x.block == b) for b in blocks}
    target = sum(weights.values()) / devices
    stages: list[list[int]] = [[]]
    acc = 0.0
    for b in blocks:
        if acc >= target * len(stages) and len(stages) < devices:
            stages.append([])
        stages[-1].append(b)
        acc += weights[b]
    return stages


def project(depth: int, k: int, n: int, device: Device, act_bytes_per_image: float, batch: int = 128,
            num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per strategy for WRN-depth-k at N = ``n`` devices (GC-2L with N groups; SC for ``layer``).

    ``act_bytes_per_image``: autograd-saved activation bytes per image of the single-process network
    (measured; the same for SC/GC/GC-2L up to the N coarse channels, which are added here).
    """
    stem = max(16, n)  # N must divide the stem's 16 channels; beyond 16 we project a stem widened to N
    layers = wrn_cifar_layers(depth, k, stem)
    sustained = device.peak_flops * device.efficiency
    rows: list[dict[str, Any]] = []
    gc2l_params = param_count(layers, "gc2l", n, num_classes)
    sc_params = param_count(layers, "sc", 1, num_classes)
    f_gc2l = forward_flops(layers, "gc2l", n, num_classes)
    f_sc = forward_flops(layers, "sc", 1, num_classes)
    reps_per_image = sum(n * layer.hw_out ** 2 * FLOAT_BYTES for layer in layers if layer.replaced)
    head = layers[-1].cout * num_classes + num_classes
    # group parallel: everything but the classifier is split; every device sees the whole batch
    comm = group_comm_bytes(layers, n, batch)
    t_comp = 3 * batch * f_gc2l / n / sustained
    t_comm = comm / device.bandwidth + _messages_group(layers, n) * device.latency
    local_params = (gc2l_params - head) / n + head
    mem = 3 * FLOAT_BYTES * local_params + batch * (act_bytes_per_image / n + reps_per_image * (1 - 1 / n))
    rows.append(dict(strategy="group", network=f"GC-2L N={n}", params_per_device=local_params, step_s=t_comp + t_comm,
                     compute_s=t_comp, comm_s=t_comm, bytes_sent=comm, memory_bytes=mem))
    # data parallel over the same GC-2L network
    ar = 2 * (n - 1) / n * gc2l_params * FLOAT_BYTES
    t_comp = 3 * batch * f_gc2l / n / sustained
    t_comm = ar / device.bandwidth + 2 * (n - 1) * device.latency
    mem = 3 * FLOAT_BYTES * gc2l_params + batch / n * act_bytes_per_image
    rows.append(dict(strategy="data", network=f"GC-2L N={n}", params_per_device=gc2l_params, step_s=t_comp + t_comm,
                     compute_s=t_comp, comm_s=t_comm, bytes_sent=ar, memory_bytes=mem))
    # naive layer-wise model parallelism of the SC network
    stages = _layer_stages(layers, "sc", 1, n)
    stage_params = [sum(_conv_params(x, "sc", 1) for x in layers if x.block in s) for s in stages]
    # activation bytes of a stage ∝ its share of Σ cin·H·W (what the convs and BNs save)
    share = {b: sum(x.cin * x.hw_out ** 2 for x in layers if x.block == b) for b in {x.block for x in layers}}
    total_share = sum(share.values())
    boundaries = []  # the output of each stage's last block crosses to the next device
    for stage in stages[:-1]:
        last = [x for x in layers if x.block == stage[-1]][-1]
        boundaries.append(batch * last.cout * last.hw_out ** 2 * FLOAT_BYTES)
    t_comp = 3 * batch * f_sc / sustained  # one device busy at a time
    t_comm = 2 * sum(boundaries) / device.bandwidth + 2 * len(boundaries) * device.latency
    worst = max(range(len(stages)), key=lambda i: 3 * FLOAT_BYTES * stage_params[i] +
                batch * act_bytes_per_image * sum(share[b] for b in stages[i]) / total_share)
    mem = 3 * FLOAT_BYTES * (stage_params[worst] + (head if worst == len(stages) - 1 else 0)) + \
        batch * act_bytes_per_image * sum(share[b] for b in stages[worst]) / total_share
    rows.append(dict(strategy="layer", network="SC", params_per_device=max(stage_params), step_s=t_comp + t_comm,
                     compute_s=t_comp, comm_s=t_comm, bytes_sent=max(boundaries, default=0) * 2, memory_bytes=mem))
    for r in rows:
        r.update(model=f"WRN-{depth}-{k}", N=n, fits=r["memory_bytes"] <= device.memory,
                 widened_stem=stem != 16, params_total=(sc_params if r["strategy"] == "layer" else gc2l_params))
    return rows


def device_dict(device: Device) -> dict[str, Any]:
    return asdict(device)

