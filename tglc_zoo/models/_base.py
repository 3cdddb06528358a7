"""The model interface shared by every family (timm's conventions).

No ``from __future__ import annotations`` here or in the family modules: TorchScript reads the class
annotations of a module, and cannot read them as strings.
"""
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

import torch
from timm.layers import DropPath
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ModelArgumentError
from ..layers import CONV_SPECS, GROUPED_CONV_TYPES, check_conv_type, create_conv
from ..util.choices import check_choice, unknown_choice

POOL_TYPES: tuple[str, ...] = ("avg", "max", "avgmax", "")
"""``global_pool`` choices: average, max, their mean, or ``""`` (no pooling: unpooled features, no classifier)."""


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ModelArgumentError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, "
                                 f"got {value!r}")
    return value


def check_rate(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1) (dropout-like probabilities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ModelArgumentError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_global_pool(global_pool: Any, num_classes: int) -> str:
    pool = check_choice("global_pool", global_pool, POOL_TYPES)
    if pool == "" and num_classes > 0:
        raise ModelArgumentError(f"global_pool='' (no pooling) needs num_classes=0, got num_classes={num_classes}: "
                                 "a linear classifier needs pooled features")
    return pool


def global_pool_2d(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """Pool (B, C, H, W) to (B, C) by ``pool_type`` (one of :data:`POOL_TYPES`); ``""`` returns ``x``."""
    if pool_type == "avg":
        return x.mean(dim=[2, 3])
    if pool_type == "max":
        return x.amax(dim=[2, 3])
    if pool_type == "avgmax":
        return 0.5 * (x.mean(dim=[2, 3]) + x.amax(dim=[2, 3]))
    return x


def drop_path_rates(rate: float, num_blocks: int) -> list[float]:
    """Stochastic depth as timm's ResNets set it: block i of n drops its residual branch with probability
    ``rate * i / (n - 1)`` (0 for the first block, ``rate`` for the last)."""
    return [rate * i / max(num_blocks - 1, 1) for i in range(num_blocks)]


def make_drop_path(p: float) -> nn.Module:
    """timm's ``DropPath(p)`` (per-sample residual-branch drop), or an identity when ``p`` is 0."""
    return DropPath(p) if p > 0 else nn.Identity()


def stage_geometry(strides: Sequence[int], start_reduction: int, output_stride: int | None
                   ) -> list[tuple[int, int, int, int]]:
    """Per stage: (stride, dilation of its first block, dilation of the others, reduction after it).

    With ``output_stride``, a stride that would take the reduction past it becomes dilation instead
    (timm's rule), so the later stages keep the resolution. ``None`` keeps every stride. Valid values are
    the reductions the stages reach (names the bad value and lists them).
    """
    reductions = [start_reduction]
    for s in strides:
        reductions.append(reductions[-1] * s)
    valid = sorted(set(reductions))
    if output_stride is not None and output_stride not in valid:
        raise unknown_choice("output_stride", output_stride, [str(v) for v in valid],
                             valid=f"{valid} (the reductions this architecture's stages reach)")
    out = []
    reduction, dilation = start_reduction, 1
    for s in strides:
        first_dilation = dilation
        if output_stride is not None and reduction * s > output_stride:
            dilation *= s
            s = 1
        reduction *= s
        out.append((s, first_dilation, dilation, reduction))
    return out


def take_indices(num_levels: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """timm's feature-index rule: ``None`` all levels, an int the last n, a sequence those (negative from the
    end). Returns the absolute indices and the largest one; an index out of range names the valid range."""
    if indices is None:
        indices = num_levels
    if isinstance(indices, int):
        if not 0 < indices <= num_levels:
            raise ModelArgumentError(f"take the last {indices} feature levels: out of range; valid: 1 to {num_levels}")
        taken = list(range(num_levels - indices, num_levels))
    else:
        taken = []
        for i in indices:
            idx = num_levels + i if i < 0 else i
            if not 0 <= idx < num_levels:
                raise ModelArgumentError(f"feature index {i} is out of range; valid: {-num_levels} to {num_levels - 1} "
                                         f"(this model has {num_levels} feature levels)")
            taken.append(idx)
        if not taken:
            raise ModelArgumentError("no feature index given; valid: a non-empty list of indices, an int, or None")
    return taken, max(taken)


class ConvFactory:
    """Builds the replaced convolutions of one model; errors name the layer they come from."""

    def __init__(self, conv_type: str, groups: int, **conv_kwargs: Any) -> None:
        self.conv_type = check_conv_type(conv_type)
        self.groups = check_positive("groups", groups)
        if not CONV_SPECS[conv_type].grouped and groups != 1:
            raise ModelArgumentError(f"conv_type {conv_type!r} is not grouped and needs groups=1, got groups={groups}; "
                                     f"valid grouped conv types: {list(GROUPED_CONV_TYPES)}")
        self.conv_kwargs = conv_kwargs

    def __call__(self, layer: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 conv_type: str | None = None, dilation: int = 1) -> nn.Module:
        try:
            return create_conv(conv_type or self.conv_type, in_channels, out_channels, kernel_size, stride,
                               groups=self.groups, dilation=dilation, **self.conv_kwargs)
        except ValueError as e:
            raise ModelArgumentError(f"layer '{layer}' ({in_channels}->{out_channels} channels, "
                                     f"conv_type={conv_type or self.conv_type!r}): {e}") from None


def init_weights_(model: nn.Module) -> None:
    """He init for plain convs (replaced convs initialise themselves), unit BN, small linear."""
    for m in model.modules():
        if type(m) is nn.Conv2d:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class ZooModel(Protocol):
    """What every tglc_zoo model carries (timm's model interface), for typing code that takes any ``nn.Module``.

    :class:`ClassifierModel` satisfies it; ``typing.cast(ZooModel, model)`` views a model built by
    :func:`tglc_zoo.create_model` (typed ``nn.Module``) through it. A typing aid only: nothing checks it.
    """

    pretrained_cfg: dict[str, Any]
    model_args: dict[str, Any]
    num_classes: int
    num_features: int
    head_hidden_size: int
    feature_info: list[dict[str, Any]]

    def get_classifier(self) -> nn.Module: ...


class ClassifierModel(nn.Module):
    """Head, feature levels, checkpointing and bookkeeping of timm's model interface.

    A family builds ``stem``, its stage container (named by ``_stages_name``: a Sequential of stages, each a
    Sequential of blocks) and its classifier (named by ``_classifier_name``, through :meth:`_make_head`),
    sets ``num_features``, ``output_stride`` and ``feature_info`` (one entry per feature level; ``module``
    names ``"stem"`` or a stage), and implements the scriptable :meth:`forward_stages`,
    :meth:`final_forward` and :meth:`classify`, plus :meth:`final_norm` and :meth:`_prune_final`.
    """

    # pretrained_cfg / model_args / feature_info are plain Python data TorchScript has no types for
    __jit_ignored_attributes__ = ["pretrained_cfg", "model_args", "feature_info"]
    __jit_unused_properties__ = ["default_cfg"]

    num_classes: int
    num_features: int
    head_hidden_size: int
    output_stride: int
    global_pool: str
    drop_rate: float
    drop_path_rate: float
    grad_checkpointing: bool
    _classifier_name = "fc"
    _stages_name = "stages"

    def __init__(self, num_classes: int, drop_rate: float, global_pool: str = "avg",
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.num_classes = check_positive("num_classes", num_classes, allow_zero=True)
        self.drop_rate = check_rate("drop_rate", drop_rate)
        self.drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
        self.global_pool = check_global_pool(global_pool, num_classes)
        self.grad_checkpointing = False
        self.head_drop: nn.Module  # the dropout before the classifier, set by subclasses
        self.stem: nn.Module
        self.pretrained_cfg: dict[str, Any] = {}
        self.model_args: dict[str, Any] = {}
        self.feature_info: list[dict[str, Any]] = []

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    # -- family hooks -----------------------------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        """The stages (scriptable; grad checkpointing through :meth:`_checkpointed_stages`)."""
        raise NotImplementedError

    def final_forward(self, x: torch.Tensor) -> torch.Tensor:
        """What follows the last stage inside ``forward_features`` (final norm/act or head conv)."""
        raise NotImplementedError

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier applied to pooled features."""
        raise NotImplementedError

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The final normalisation that ``forward_intermediates(norm=True)`` applies to the last level."""
        return x

    def _prune_final(self) -> None:
        """Drop what follows the stages (after :meth:`prune_intermediate_layers` shortened them)."""
        raise NotImplementedError

    # -- structure ---------------------------------------------------------------------------
    @torch.jit.ignore
    def stages_module(self) -> nn.Sequential:
        stages = getattr(self, self._stages_name)
        assert isinstance(stages, nn.Sequential)
        return stages

    @torch.jit.ignore
    def levels(self) -> list[tuple[str, nn.Module]]:
        """The modules ``forward_features`` runs before :meth:`final_forward`, in order, with their names."""
        return [("stem", self.stem)] + [(f"{self._stages_name}.{i}", s) for i, s in enumerate(self.stages_module())]

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    @torch.jit.ignore
    def body(self) -> Iterable[nn.Module]:
        """The blocks of every stage, in order."""
        return (block for stage in self.stages_module() for block in cast(nn.Sequential, stage))

    @torch.jit.ignore
    def _checkpointed_stages(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.body():
            x = checkpoint(block, x, use_reentrant=False)
        return x

    # -- timm interface ---------------------------------------------------------------------
    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_forward(self.forward_stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = global_pool_2d(x, self.global_pool)
        x = self.head_drop(x)
        return x if pre_logits else self.classify(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Any:
        """The classifier module (its name with ``name_only=True``)."""
        return self._classifier_name if name_only else getattr(self, self._classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` (0: none); ``global_pool`` (one of :data:`POOL_TYPES`) changes
        the pooling, ``""`` (with ``num_classes=0``) makes ``forward`` return unpooled features."""
        num_classes = check_positive("num_classes", num_classes, allow_zero=True)
        pool = check_global_pool(self.global_pool if global_pool is None else global_pool, num_classes)
        head = self._make_head(num_classes)
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, 0, 0.01)
            nn.init.zeros_(head.bias)
        head.to(device=self.params_device())
        self.num_classes, self.global_pool = num_classes, pool
        setattr(self, self._classifier_name, head)
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}

    @torch.jit.ignore
    def params_device(self) -> torch.device:
        """Device of the model's parameters (where a new head must live)."""
        return next(self.parameters()).device

    @torch.jit.ignore
    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the outputs of the feature levels of ``feature_info`` on the way through.

        Args:
            indices: ``None`` every level, an int the last n, a sequence those levels (negative from the end).
            norm: apply the final normalisation to the last level when it is taken.
            stop_early: stop after the last level taken (the returned final features are then that level's).
            output_fmt: only ``"NCHW"``.
            intermediates_only: return only the list of intermediates.

        Returns:
            ``(forward_features(x), intermediates)``, or the intermediates alone.
        """
        if output_fmt != "NCHW":
            raise ModelArgumentError(f"output_fmt {output_fmt!r} is not supported; valid choices: ['NCHW']")
        taken, max_index = take_indices(len(self.feature_info), indices)
        wanted = {self.feature_info[i]["module"] for i in taken}
        last_needed = self.feature_info[max_index]["module"]
        levels = self.levels()
        checkpointing = self.grad_checkpointing and self.training
        intermediates = []
        ran_all = True
        for i, (name, module) in enumerate(levels):
            if checkpointing and name != "stem":
                for block in cast(nn.Sequential, module):
                    x = checkpoint(block, x, use_reentrant=False)
            else:
                x = module(x)
            if name in wanted:
                intermediates.append(self.final_norm(x) if norm and i == len(levels) - 1 else x)
            if stop_early and name == last_needed:
                ran_all = i == len(levels) - 1
                break
        if intermediates_only:
            return intermediates
        return (self.final_forward(x) if ran_all else x), intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last level in ``indices`` (and the final layers with them, or with
        ``prune_norm``); ``prune_head`` removes pooling and classifier. Returns the absolute indices kept."""
        taken, max_index = take_indices(len(self.feature_info), indices)
        names = [name for name, _ in self.levels()]
        keep = names.index(self.feature_info[max_index]["module"])  # stages kept: levels after the stem
        stages = self.stages_module()
        if keep < len(stages) or prune_norm:
            setattr(self, self._stages_name, stages[:keep])
            self._prune_final()
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head:
            self.reset_classifier(0, "")
        return taken

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        raise NotImplementedError
