"""What the benchmarks run, read from the conv-type specs (``tglc_zoo.layers.CONV_SPECS``): every conv type,
each of GC-2L's kernels (the layer's ``impl`` option) as its own candidate, and the deployed form of every
conv type that has one. A conv type added to the specs is benchmarked with nothing changed here."""
from __future__ import annotations

import inspect
from functools import cache
from typing import Any

from tglc_zoo.layers import CONV_SPECS, ConvType, create_conv, deploy
from tglc_zoo.layers.gc2l_impl import KERNEL_IMPLS


@cache
def has_deployed_form(conv_type: str) -> bool:
    """Whether ``deploy`` turns a layer of ``conv_type`` into another module (FLGC's grouped convolutions)."""
    layer = create_conv(conv_type, 4, 4, 1, groups=2 if CONV_SPECS[conv_type].grouped else 1)
    return type(deploy(layer)) is not type(layer)


def benchmark_groups(conv_type: str, groups: int) -> int:
    """The N a layer or model of ``conv_type`` is built with at grid point N (1 for a type without groups)."""
    return groups if CONV_SPECS[conv_type].grouped else 1


def _variants(spec: ConvType) -> dict[str, dict[str, Any]]:
    if "impl" in inspect.signature(spec.layer).parameters:  # GC-2L: every kernel, timed on its own
        return {f"{spec.name}:{impl}": {"impl": impl} for impl in KERNEL_IMPLS}
    return {spec.name: {}}


def _candidates() -> dict[str, tuple[str, dict[str, Any], bool]]:
    out: dict[str, tuple[str, dict[str, Any], bool]] = {}
    for spec in CONV_SPECS.values():
        out.update({name: (spec.name, kwargs, False) for name, kwargs in _variants(spec).items()})
        if has_deployed_form(spec.name):
            out[f"{spec.name}:deployed"] = (spec.name, {}, True)
    return out


# candidate name -> (conv_type, create_conv kwargs, deployed form?)
CANDIDATES: dict[str, tuple[str, dict[str, Any], bool]] = _candidates()
