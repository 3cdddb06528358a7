"""Downstream backbones: a GC-2L model (by name, or any CNN built or converted elsewhere) as the backbone of
torchvision's detection and segmentation models.

* :func:`fpn_backbone` — levels → torchvision's ``FeaturePyramidNetwork``, with ``out_channels``: what
  ``FasterRCNN``, ``MaskRCNN``, ``RetinaNet`` and ``FCOS`` take;
* :func:`segmentation_backbone` — a dilated backbone (``output_stride=8``) returning ``{"out", "aux"}``: what
  ``DeepLabV3`` (``DeepLabHead``) and ``FCN`` (``FCNHead``) take.

Both freeze BatchNorm (``norm_layer="frozen_bn"``) and early levels (``trainable_levels``) as torchvision's
``resnet_fpn_backbone`` does.
"""
from .body import Body, build_body, freeze_levels
from .fpn import EXTRA_BLOCKS, FPNBackbone, fpn_backbone
from .levels import feature_levels
from .segmentation import SegmentationBackbone, segmentation_backbone

__all__ = ["Body", "EXTRA_BLOCKS", "FPNBackbone", "SegmentationBackbone", "build_body", "feature_levels",
           "fpn_backbone", "freeze_levels", "segmentation_backbone"]
