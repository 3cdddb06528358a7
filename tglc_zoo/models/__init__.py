"""Model families of tglc_zoo (each built from a ``conv_type`` and ``groups`` switch).

A family is one block class run by :class:`StagedNet`'s stage loop, plus one
:class:`~tglc_zoo.archs.ArchSpec` (see :mod:`tglc_zoo.models._staged` for the block interface).
"""
from ._base import ClassifierModel
from ._conv_factory import ConvFactory, ConvOverrides
from ._frozen_bn import NORM_LAYERS, FrozenBatchNorm2d, freeze_batchnorm
from ._interface import ZooModel
from ._parts import ConvBNAct, Stem, StemSpec, make_drop_path
from ._staged import FEATURE_LEVELS, BlockFactory, StagedNet, StageSpec
from .mobilenetv2 import MobileNetV2
from .wide_resnet import WideResNet

__all__ = ["BlockFactory", "ClassifierModel", "ConvBNAct", "ConvFactory", "ConvOverrides", "FEATURE_LEVELS",
           "FrozenBatchNorm2d", "MobileNetV2", "NORM_LAYERS", "StagedNet", "StageSpec", "Stem", "StemSpec",
           "WideResNet", "ZooModel", "freeze_batchnorm", "make_drop_path"]
