"""Model families of tglc_zoo (each built from a ``conv_type`` and ``groups`` switch)."""
from ._base import ClassifierModel
from .mobilenetv2 import MobileNetV2
from .wide_resnet import WideResNet

__all__ = ["ClassifierModel", "MobileNetV2", "WideResNet"]
