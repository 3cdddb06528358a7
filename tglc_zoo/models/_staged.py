"""The one stage loop: a model built from a stem, a block class and a table of stages.

A family is one block class and one :class:`~tglc_zoo.archs.ArchSpec` that names :class:`StagedNet` (or a
subclass) with ``block``, ``stages`` and ``stem``. The loop here derives the rest, identically for every
family: each block's stride, dilation under ``output_stride`` (:func:`.stage_geometry`) and drop-path rate
(timm's ``calculate_drop_path_rates``: linear over all blocks), the ``feature_info`` levels, the final
layers, the head, and the weight initialisation.

A block class is called with keyword arguments::

    block(in_chs=..., out_chs=..., stride=..., make_conv=..., name=..., drop_path=..., dilation=...,
          first_dilation=..., **stage.block_args)

where ``make_conv(layer, in_chs, out_chs, kernel_size, stride, dilation=...)`` (a :class:`.ConvFactory`)
builds every replaced convolution and ``name`` is the block's path (``"stages.1.0"``) for layer names;
``first_dilation`` is the dilation of the block's strided conv, ``dilation`` that of its others; ``drop_path``
is its stochastic-depth rate (:func:`.make_drop_path`). The block never branches on the conv type.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from timm.layers import calculate_drop_path_rates
from torch import nn

from ..errors import ModelArgumentError
from ..util.choices import check_choice
from ._base import ClassifierModel
from ._checks import check_positive
from ._conv_factory import ConvFactory, ConvOverrides
from ._frozen_bn import check_norm_layer, freeze_batchnorm
from ._geometry import stage_geometry
from ._init import init_weights_
from ._parts import ConvBNAct, StemSpec

__all__ = ["BlockFactory", "FEATURE_LEVELS", "StageSpec", "StagedNet"]

FeatureLevels = Literal["stages", "resolutions"]
FEATURE_LEVELS: tuple[str, ...] = ("stages", "resolutions")
"""``"stages"``: the stem and every stage; ``"resolutions"``: the last of stem and stages at each nominal
resolution (timm's rule for MobileNets)."""


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``blocks`` blocks to ``out_chs`` channels, the first with ``stride``; ``block_args`` are passed
    to every block of the stage (MobileNetV2's ``expand_ratio``)."""

    blocks: int
    out_chs: int
    stride: int = 1
    block_args: dict[str, Any] = field(default_factory=dict)


BlockFactory = Callable[..., nn.Module]
"""What ``block`` is: a class (or callable) building one block from the keyword arguments above."""


class StagedNet(ClassifierModel):
    """A classifier built from a stem, stages of ``block`` and optional final layers.

    Args:
        block: the family's block class (:class:`BlockFactory`).
        stages: the stages, in order (:class:`StageSpec`).
        stem: the standard first convolution (:class:`~tglc_zoo.models.StemSpec`).
        final_norm_act: BN and ``act_layer`` after the last stage (pre-activation families).
        head_chs: a replaced 1×1 conv (``conv_head.conv``) → BN → ``act_layer`` to this many channels after
            the last stage (MobileNetV2's 1280); ``None``: none.
        act_layer: the activation of the final layers.
        feature_levels: which levels ``feature_info`` lists (:data:`FEATURE_LEVELS`).
        conv_type, groups: the convolution type and N of every replaced conv.
        conv_overrides: per-layer conv types declared by the architecture (:data:`~tglc_zoo.models.ConvOverrides`).
        num_classes, in_chans, drop_rate, drop_path_rate, global_pool: timm's arguments (``global_pool``: one
            of ``"avg"``, ``"max"``, ``"avgmax"``, or ``""`` with ``num_classes=0``).
        output_stride: the largest reduction of the feature maps (later strides become dilation);
            ``None``: the stages' own.
        conv_kwargs: options for every replaced conv (e.g. GC-2L's ``impl``).
        norm_layer: ``"batchnorm"`` or ``"frozen_bn"`` (every BatchNorm2d a :class:`.FrozenBatchNorm2d`, with the
            same state-dict keys, for detection fine-tuning); torchvision's classes are accepted too.
    """

    def __init__(self, block: BlockFactory, stages: Sequence[StageSpec], stem: StemSpec,
                 final_norm_act: bool = False, head_chs: int | None = None, act_layer: type[nn.Module] = nn.ReLU,
                 feature_levels: FeatureLevels = "stages", conv_type: str = "sc", groups: int = 1,
                 conv_overrides: ConvOverrides | None = None, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, global_pool: str = "avg",
                 output_stride: int | None = None, conv_kwargs: dict[str, Any] | None = None,
                 norm_layer: str | type[nn.Module] = "batchnorm") -> None:
        super().__init__(num_classes, drop_rate, global_pool, drop_path_rate)
        self.norm_layer = check_norm_layer(norm_layer)
        check_positive("in_chans", in_chans)
        check_choice("feature_levels", feature_levels, FEATURE_LEVELS)
        if not stages:
            raise ModelArgumentError("stages is empty; valid: a sequence of at least one StageSpec")
        make_conv = ConvFactory(conv_type, groups, conv_overrides, **(conv_kwargs or {}))
        self.conv_type, self.groups = conv_type, groups

        self.stem = stem.build(in_chans)
        geometry = stage_geometry([s.stride for s in stages], stem.reduction, output_stride)
        rates = iter(calculate_drop_path_rates(self.drop_path_rate, sum(s.blocks for s in stages)))
        levels = [dict(num_chs=stem.out_chs, reduction=stem.reduction, module="stem")]
        built: list[nn.Module] = []
        in_chs = stem.out_chs
        for i, (stage, where) in enumerate(zip(stages, geometry)):
            blocks = []
            for j in range(check_positive(f"stages[{i}].blocks", stage.blocks)):
                blocks.append(block(in_chs=in_chs, out_chs=stage.out_chs, stride=where.stride if j == 0 else 1,
                                    make_conv=make_conv, name=f"{self._stages_name}.{i}.{j}", drop_path=next(rates),
                                    dilation=where.dilation,
                                    first_dilation=where.first_dilation if j == 0 else where.dilation,
                                    **stage.block_args))
                in_chs = stage.out_chs
            built.append(nn.Sequential(*blocks))
            levels.append(dict(num_chs=stage.out_chs, reduction=where.reduction, module=f"{self._stages_name}.{i}"))
        self.add_module(self._stages_name, nn.Sequential(*built))
        self.feature_info = levels if feature_levels == "stages" else _last_per_resolution(levels, stages)
        self.output_stride = geometry[-1].reduction

        self.norm = nn.BatchNorm2d(in_chs) if final_norm_act else nn.Identity()
        self.act = act_layer(inplace=True) if final_norm_act else nn.Identity()
        if head_chs is not None:
            self.conv_head = ConvBNAct(make_conv("conv_head.conv", in_chs, head_chs, 1), head_chs, act_layer)
            in_chs = head_chs
        else:
            self.conv_head = nn.Identity()
        make_conv.check_overrides_used()
        self.num_features = self.head_hidden_size = in_chs
        self.head_drop = nn.Dropout(self.drop_rate)
        self.add_module(self._classifier_name, self._make_head(num_classes))
        init_weights_(self)
        if self.norm_layer == "frozen_bn":
            freeze_batchnorm(self)


def _last_per_resolution(levels: list[dict[str, Any]], stages: Sequence[StageSpec]) -> list[dict[str, Any]]:
    """The stem and stages that are the last at their nominal resolution (the next stage strides, or none follows).

    Nominal: decided by the stages' own strides, so ``output_stride`` dilates levels without removing any."""
    strides = [s.stride for s in stages]
    return [level for i, level in enumerate(levels) if i == len(strides) or strides[i] > 1]
