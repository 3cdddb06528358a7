"""A new shardable conv type is its layer, its ShardRule and its spec: group parallelism needs nothing else."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tglc_zoo.distributed.launch import launch
from tglc_zoo.layers import CONV_SPECS, ConvType, GroupConv2d, ShardRule
from tglc_zoo.layers.shard_rules import local_conv

pytestmark = pytest.mark.slow


class ScaledGroupConv2d(GroupConv2d):
    """A made-up conv type: a group convolution followed by a learned scale per output channel."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, self.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale.view(1, -1, 1, 1)


class _LocalScaled(nn.Module):
    """Rank k's rows, under the layer's own keys (``weight``, ``scale``)."""

    def __init__(self, layer: ScaledGroupConv2d, rank: int, world: int, reuse: bool) -> None:
        super().__init__()
        self._conv = [local_conv(layer, rank, world, reuse=reuse)]  # geometry only (not registered)
        self.weight = self._conv[0].weight
        rows = layer.out_channels // world
        self.scale = nn.Parameter(layer.scale.detach()[rank * rows:(rank + 1) * rows].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self._conv[0]
        y = F.conv2d(x, self.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        return y * self.scale.view(1, -1, 1, 1)


class ScaledRule(ShardRule):
    def check(self, layer: nn.Module, world: int) -> str | None:
        return None if getattr(layer, "groups", 0) % world == 0 else "groups not a multiple of the world size"

    def local(self, layer: nn.Module, rank: int, world: int, comm: Any, name: str, reuse: bool,
              memo: Any = None) -> nn.Module:
        assert isinstance(layer, ScaledGroupConv2d)
        return _LocalScaled(layer, rank, world, reuse)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.body = ScaledGroupConv2d(8, 8, 3, padding=1, groups=2)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.body(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _worker(rank: int, world: int) -> float:
    from tglc_zoo.distributed import group_parallel

    CONV_SPECS["scaled_gc"] = ConvType("scaled_gc", "scaled GC", ScaledGroupConv2d, CONV_SPECS["gc"].flops,
                                       grouped=True, shard_rule=ScaledRule())
    torch.manual_seed(0)
    model = _Net().double()
    ref = copy.deepcopy(model)
    shard = group_parallel(model, example_input=(4, 3, 8, 8))
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    assert list(shard.local_state_dict()) == list(ref.state_dict())  # the same keys, this rank's rows
    ref(x).sum().backward()
    shard(x).sum().backward()
    rows = 8 // world
    want = ref.body.scale.grad[rank * rows:(rank + 1) * rows]
    return float((shard.module.body.scale.grad - want).abs().max() + (shard(x) - ref(x)).abs().max())


def test_a_conv_type_defined_outside_the_package_is_split_by_its_own_rule() -> None:
    assert all(r.value < 1e-12 for r in launch(_worker, 2, timeout=180, pg_timeout=60))
