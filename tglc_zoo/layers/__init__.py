"""Convolution layers of tglc_zoo: one module per type, and the :func:`create_conv` factory."""
from .create_conv import CONV_LABELS, CONV_TYPES, check_conv_type, create_conv
from .deploy import deploy
from .flgc import DeployedFLGC, FLGCConv2d, hard_assignment
from .group_conv import GroupConv2d
from .shuffle_conv import ShuffleGroupConv2d, channel_shuffle
from .std_conv import StdConv2d
from .two_level_conv import TwoLevelGroupConv2d

__all__ = [
    "CONV_LABELS", "CONV_TYPES", "check_conv_type", "create_conv", "deploy", "DeployedFLGC", "FLGCConv2d", "hard_assignment",
    "GroupConv2d", "ShuffleGroupConv2d", "channel_shuffle", "StdConv2d", "TwoLevelGroupConv2d",
]
