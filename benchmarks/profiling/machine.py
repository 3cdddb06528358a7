"""A description of the machine a benchmark ran on (stored next to every result)."""
from __future__ import annotations

import os
import platform
import time
from typing import Any

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


class ForeignLoad:
    """The CPU that *other* processes used while the block ran, in cores (``/proc/stat``'s busy time minus this
    process's own); ``None`` where ``/proc/stat`` cannot be read. Unlike the load average, it does not count the
    benchmark itself, and it covers exactly the timed window."""

    def __init__(self) -> None:
        self.cores: float | None = None

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ForeignLoad:
        self._t0, self._busy0, self._own0 = time.perf_counter(), self._busy(), sum(os.times()[:2])
        return self

    def __exit__(self, *exc: Any) -> None:
        busy = self._busy()
        wall = time.perf_counter() - self._t0
        if busy is None or self._busy0 is None or wall <= 0:
            return
        own = sum(os.times()[:2]) - self._own0
        self.cores = round(max(0.0, (busy - self._busy0) - own) / wall, 3)


def describe(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "device": str(device),
        "load_average_start": load_average(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu_name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda_version=torch.version.cuda, cudnn_version=torch.backends.cudnn.version())
    return info
