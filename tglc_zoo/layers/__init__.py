"""Convolution layers of tglc_zoo: one module per type, one spec per type, and the :func:`create_conv` factory."""
from .conv_types import (
                         CONV_LABELS,
                         CONV_SPECS,
                         CONV_TYPES,
                         GROUPED_CONV_TYPES,
                         SHARDABLE_CONV_TYPES,
                         ConvType,
                         conv_type_of,
                         spec_of_layer,
)
from .create_conv import check_conv_type, create_conv
from .deploy import deploy
from .flgc import DeployedFLGC, FLGCConv2d, hard_assignment
from .gc2l_tuner import autotune
from .group_conv import GroupConv2d
from .shard_rules import ChannelComm, Collective, ShardRule
from .shuffle_conv import ShuffleGroupConv2d, channel_shuffle
from .std_conv import StdConv2d
from .two_level_conv import TwoLevelGroupConv2d, fix_impl

__all__ = [
    "CONV_LABELS", "CONV_SPECS", "CONV_TYPES", "GROUPED_CONV_TYPES", "SHARDABLE_CONV_TYPES", "ConvType",
    "autotune", "conv_type_of", "spec_of_layer", "ChannelComm", "Collective", "ShardRule", "check_conv_type",
    "create_conv", "deploy", "DeployedFLGC", "FLGCConv2d", "hard_assignment",
    "GroupConv2d", "ShuffleGroupConv2d", "channel_shuffle", "StdConv2d", "TwoLevelGroupConv2d", "fix_impl",
]
