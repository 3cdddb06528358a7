"""What each operation of a traced model does to channel groups: the tables group parallelism reads.

An activation split by channel group (rank k holds channels ``[k·C/N, (k+1)·C/N)``) stays split through
an operation that treats channels independently — BatchNorm, activations, pooling, depthwise and
grouped convolutions whose groups are a multiple of N, residual adds, per-channel scaling. Everything
else *mixes* channels across groups. This module classifies the nodes of a ``torch.fx`` graph:

* :data:`ELEMENTWISE_*` — one tensor in, same channels out;
* :data:`BINARY_*` — elementwise with broadcasting (add, mul, ...);
* :data:`REDUCTIONS` / pooling — over spatial dimensions only (a global pool gives *pooled* features);
* :data:`SHAPE_METHODS` — Python values (sizes), not tensors;
* :data:`RANDOM_*` — draw random numbers: every rank would draw different ones;
* :data:`DROPOUT_FUNCS` / modules — dropout, synchronised across ranks where it must be.

Modules are classified by :func:`module_class`.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import CONV_SPECS, ShardRule, spec_of_layer

__all__ = ["ELEMENTWISE_FUNCS", "ELEMENTWISE_METHODS", "BINARY_FUNCS", "BINARY_METHODS", "REDUCTIONS",
           "SPATIAL_FUNCS", "SHAPE_METHODS", "RANDOM_FUNCS", "RANDOM_METHODS", "DROPOUT_FUNCS", "FLATTEN",
           "module_class", "drop_path_classes", "op_name", "ModuleClass", "shard_rule", "shardable_layer_names"]

ELEMENTWISE_FUNCS: frozenset[Any] = frozenset({
    F.relu, F.relu_, F.relu6, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.sigmoid, F.tanh, F.leaky_relu,
    F.leaky_relu_, F.elu, F.elu_, F.selu, F.celu, F.mish, F.softplus, F.hardtanh, F.hardtanh_, F.logsigmoid,
    F.softsign, F.tanhshrink, F.threshold, torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.clamp,
    torch.clip, torch.exp, torch.sqrt, torch.rsqrt, torch.neg, torch.abs, torch.square, torch.sign, torch.log,
    torch.erf, operator.neg, operator.pos, operator.abs, torch.nan_to_num, torch.clamp_min, torch.clamp_max,
})
ELEMENTWISE_METHODS: frozenset[str] = frozenset({
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clamp_min", "clamp_min_",
    "clamp_max", "clamp_max_", "clip", "clip_", "exp", "exp_", "sqrt", "sqrt_", "rsqrt", "neg", "neg_", "abs",
    "abs_", "square", "sign", "log", "erf", "contiguous", "float", "double", "half", "bfloat16", "to", "type",
    "detach", "clone", "nan_to_num", "hardswish", "hardsigmoid", "silu", "gelu", "mish", "softplus",
})
BINARY_FUNCS: frozenset[Any] = frozenset({
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub, operator.imul,
    operator.itruediv, operator.pow, torch.add, torch.sub, torch.mul, torch.div, torch.maximum, torch.minimum,
    torch.pow, torch.true_divide, torch.where, torch.addcmul, torch.lerp,
})
BINARY_METHODS: frozenset[str] = frozenset({
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "pow", "pow_", "maximum", "minimum",
    "type_as", "expand_as", "addcmul", "addcmul_", "lerp", "where",
})
# reductions whose ``dim`` argument decides whether they mix channels
REDUCTIONS: frozenset[Any] = frozenset({torch.mean, torch.sum, torch.amax, torch.amin, torch.std, torch.var,
                                        "mean", "sum", "amax", "amin", "std", "var"})
# per-channel spatial operations: pooling, padding, resampling (``pooled`` when they reduce to 1×1)
SPATIAL_FUNCS: frozenset[Any] = frozenset({
    F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.lp_pool2d, F.interpolate,
    F.upsample, F.pad, torch.nn.functional.max_pool2d_with_indices,
})
GLOBAL_POOLS: frozenset[Any] = frozenset({F.adaptive_avg_pool2d, F.adaptive_max_pool2d})
SHAPE_METHODS: frozenset[str] = frozenset({"size", "dim", "numel", "ndimension", "nelement", "get_device",
                                           "is_contiguous"})
RANDOM_FUNCS: frozenset[Any] = frozenset({torch.rand, torch.randn, torch.rand_like, torch.randn_like,
                                          torch.randint, torch.randint_like, torch.bernoulli, torch.normal,
                                          torch.multinomial, torch.randperm})
RANDOM_METHODS: frozenset[str] = frozenset({"bernoulli", "bernoulli_", "uniform_", "normal_", "random_",
                                            "exponential_", "geometric_", "cauchy_", "log_normal_"})
DROPOUT_FUNCS: frozenset[Any] = frozenset({F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
                                           F.feature_alpha_dropout, torch.dropout, torch.feature_dropout,
                                           torch.alpha_dropout})
FLATTEN: frozenset[Any] = frozenset({torch.flatten, "flatten"})

_ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU,
    nn.SELU, nn.CELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Identity, nn.Threshold, nn.Softsign, nn.Tanhshrink,
    nn.LogSigmoid,
)
_SPATIAL_MODULES: tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                                                 nn.AdaptiveMaxPool2d, nn.LPPool2d, nn.Upsample, nn.ZeroPad2d,
                                                 nn.ConstantPad2d, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
_DROPOUT_MODULES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                                                 nn.AlphaDropout, nn.FeatureAlphaDropout)


def drop_path_classes() -> tuple[type[nn.Module], ...]:
    """Stochastic depth modules (one random draw per sample): timm's ``DropPath``, torchvision's ``StochasticDepth``."""
    from timm.layers import DropPath
    from torchvision.ops import StochasticDepth

    return (DropPath, StochasticDepth)


def _frozen_norms() -> tuple[type[nn.Module], ...]:
    """BatchNorm with frozen statistics held as buffers (timm's ``FrozenBatchNormAct2d``, torchvision's)."""
    from timm.layers import FrozenBatchNormAct2d
    from torchvision.ops import FrozenBatchNorm2d

    return (FrozenBatchNormAct2d, FrozenBatchNorm2d)


ModuleClass = str  # one of the strings :func:`module_class` returns


def shard_rule(module: nn.Module) -> ShardRule:
    """The rule of a layer whose conv type group parallelism can split (``module_class`` gave ``"layer"``)."""
    spec = spec_of_layer(module)
    assert spec is not None and spec.shard_rule is not None
    return spec.shard_rule


def shardable_layer_names() -> list[str]:
    return [s.layer.__name__ for s in CONV_SPECS.values() if s.shard_rule is not None]


def module_class(module: nn.Module) -> ModuleClass:
    """How a leaf module treats channels.

    ``layer`` (a conv type with a shard rule: GC, GC-2L — its spec says how it splits), ``all_to_all`` (a
    grouped conv type without one: Shuffle, FLGC), ``conv`` (any other ``nn.Conv2d``), ``conv_opaque`` (an
    ``nn.Conv2d`` subclass with its own forward), ``per_channel`` (normalisations with per-channel statistics:
    BatchNorm, InstanceNorm, GroupNorm, frozen BatchNorm; per-channel PReLU), ``layer_norm``, ``linear``,
    ``elementwise``, ``spatial`` (pooling, padding, resampling), ``flatten``, ``dropout``, ``drop_path`` or
    ``unknown``.
    """
    spec = spec_of_layer(module)
    if spec is not None and spec.shard_rule is not None:
        return "layer"
    if spec is not None and spec.grouped:
        return "all_to_all"
    if isinstance(module, nn.Conv2d):
        plain = type(module).forward is nn.Conv2d.forward and type(module)._conv_forward is nn.Conv2d._conv_forward
        return "conv" if plain else "conv_opaque"
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, *_frozen_norms())):
        return "per_channel"
    if isinstance(module, nn.PReLU):
        return "per_channel" if module.num_parameters > 1 else "elementwise"
    if isinstance(module, nn.LayerNorm):
        return "layer_norm"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _ELEMENTWISE_MODULES):
        return "elementwise"
    if isinstance(module, _SPATIAL_MODULES):
        return "spatial"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, _DROPOUT_MODULES):
        return "dropout"
    if isinstance(module, drop_path_classes()):
        return "drop_path"
    return "unknown"


def is_leaf(module: nn.Module) -> bool:
    """Modules the tracer keeps whole: every module :func:`module_class` knows (their forward may branch on
    ``self.training`` or on shapes, which a trace would freeze)."""
    return module_class(module) not in ("unknown",)


def op_name(target: Any) -> str:
    """A readable name of a call_function / call_method target."""
    if isinstance(target, str):
        return f"Tensor.{target}"
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    if module == "_operator":
        return f"operator.{name}"
    if module.startswith("torch.nn.functional"):
        return f"F.{name}"
    return f"torch.{name}" if module.startswith("torch") or not module else f"{module}.{name}"
