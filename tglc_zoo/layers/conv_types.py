"""The conv types of tglc_zoo, one spec each: the single source of truth every other module reads.

A spec names the layer class, the paper's label, the analytic FLOP rule, whether models get grouped
variants of it (``grouped``) and how group parallelism splits it by channel group (``shard_rule``, a
:class:`~tglc_zoo.layers.shard_rules.ShardRule`; without one, ``why_not_shardable`` says why). Adding a
conv type means writing its layer module (and, if it is shardable, its rule) and adding one
:class:`ConvType` here: the factory, the registry's model names, the FLOP counter, the benchmarks and
group parallelism all read this table.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from ._flop_math import conv_flops, out_hw, plain_conv_flops, shape4
from .flgc import FLGCConv2d
from .group_conv import GroupConv2d
from .shard_rules import GroupConvRule, ShardRule
from .shuffle_conv import ShuffleGroupConv2d
from .std_conv import StdConv2d
from .two_level_conv import TwoLevelGroupConv2d
from .two_level_shard import TwoLevelRule

__all__ = ["ConvType", "CONV_SPECS", "CONV_TYPES", "CONV_LABELS", "GROUPED_CONV_TYPES", "SHARDABLE_CONV_TYPES",
           "conv_type_of", "spec_of_layer"]

FlopRule = Callable[[nn.Module, Sequence[int]], int]


@dataclass(frozen=True)
class ConvType:
    """One convolution type."""

    name: str                      # the ``conv_type`` string (model names, kwargs, checkpoints)
    label: str                     # how the paper writes it (tables, plots)
    layer: type[nn.Module]         # the class :func:`~tglc_zoo.layers.create_conv` builds
    flops: FlopRule                # forward FLOPs of one layer for an input shape (B, C, H, W)
    grouped: bool                  # models register ``<arch>_<name>_n<N>`` variants
    shard_rule: ShardRule | None   # how group parallelism splits it by channel group (None: it cannot)
    why_not_shardable: str = ""
    description: str = ""

    @property
    def shardable(self) -> bool:
        return self.shard_rule is not None


def _gc2l_flops(layer: nn.Module, input_shape: Sequence[int]) -> int:
    assert isinstance(layer, TwoLevelGroupConv2d)
    b, hw = shape4(input_shape)[0], out_hw(layer, input_shape)
    n, m, g = layer.in_channels, layer.out_channels, layer.groups
    return (conv_flops(b, hw, n, m, layer.kernel_size, g)          # Agp
            + conv_flops(b, hw, n, g, layer.kernel_size, g)        # R0
            + conv_flops(b, hw, g, m, (1, 1)))                     # R̄0ᵀ


def _shuffle_flops(layer: nn.Module, input_shape: Sequence[int]) -> int:
    assert isinstance(layer, ShuffleGroupConv2d)
    return plain_conv_flops(layer.conv, input_shape)


def _flgc_flops(layer: nn.Module, input_shape: Sequence[int]) -> int:
    """The masked dense conv plus the (C_out×N)(N×C_in) mask product."""
    assert isinstance(layer, FLGCConv2d)
    b, hw = shape4(input_shape)[0], out_hw(layer, input_shape)
    return (conv_flops(b, hw, layer.in_channels, layer.out_channels, layer.kernel_size)
            + 2 * layer.out_channels * layer.groups * layer.in_channels)


def _conv_flops(layer: nn.Module, input_shape: Sequence[int]) -> int:
    assert isinstance(layer, nn.Conv2d)
    return plain_conv_flops(layer, input_shape)


CONV_SPECS: dict[str, ConvType] = {spec.name: spec for spec in (
    ConvType("sc", "SC", StdConv2d, _conv_flops, grouped=False, shard_rule=None,
             why_not_shardable="a dense convolution has no channel groups to split",
             description="the standard dense convolution (the N = 1 reference)"),
    ConvType("gc", "GC", GroupConv2d, _conv_flops, grouped=True, shard_rule=GroupConvRule(),
             description="group convolution, the one-level block-Jacobi approximation (eq. 2.9)"),
    ConvType("gc2l", "GC-2L", TwoLevelGroupConv2d, _gc2l_flops, grouped=True, shard_rule=TwoLevelRule(),
             description="two-level group convolution: GC plus a coarse level of N representatives (eq. 3.5)"),
    ConvType("shuffle", "Shuffle", ShuffleGroupConv2d, _shuffle_flops, grouped=True, shard_rule=None,
             why_not_shardable="its channel shuffle mixes every group into every other after each layer",
             description="group convolution followed by ShuffleNet's channel shuffle"),
    ConvType("flgc", "FLGC", FLGCConv2d, _flgc_flops, grouped=True, shard_rule=None,
             why_not_shardable="its learned group assignment mixes channels of every process into every group",
             description="fully learnable group convolution (learned channel-to-group assignments)"),
)}

CONV_TYPES: tuple[str, ...] = tuple(CONV_SPECS)
CONV_LABELS: dict[str, str] = {name: spec.label for name, spec in CONV_SPECS.items()}
GROUPED_CONV_TYPES: tuple[str, ...] = tuple(n for n, s in CONV_SPECS.items() if s.grouped)
SHARDABLE_CONV_TYPES: tuple[str, ...] = tuple(n for n, s in CONV_SPECS.items() if s.shardable)


def conv_type_of(layer: nn.Module) -> ConvType | None:
    """The spec whose layer class is exactly ``type(layer)``, else ``None`` (a plain ``nn.Conv2d`` is not SC)."""
    return next((s for s in CONV_SPECS.values() if type(layer) is s.layer), None)


def spec_of_layer(layer: nn.Module) -> ConvType | None:
    """The spec of ``layer``'s class or of its nearest base among the conv types (subclasses of a layer
    behave as it does), else ``None``."""
    exact = conv_type_of(layer)
    if exact is not None:
        return exact
    for cls in type(layer).__mro__[1:]:
        spec = next((s for s in CONV_SPECS.values() if s.layer is cls and s.name != "sc"), None)
        if spec is not None:
            return spec
    return None
