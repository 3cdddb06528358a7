"""The analytic cost model: its layer list, parameter and FLOP counts are the real models'."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.parallel.cost_model import (
    Device,
    forward_flops,
    group_comm_bytes,
    param_count,
    project,
    wrn_cifar_layers,
)
from tglc_zoo import create_model
from tglc_zoo.layers import TwoLevelGroupConv2d


@pytest.mark.parametrize("name, depth, k", [("wrn16_2", 16, 2), ("wrn28_10", 28, 10), ("wrn28_80", 28, 80)])
@pytest.mark.parametrize("conv_type, n", [("sc", 1), ("gc", 4), ("gc2l", 2), ("gc2l", 16)])
def test_param_count_is_the_real_models(name, depth, k, conv_type, n):
    with torch.device("meta"):
        model = create_model(name, conv_type=conv_type, groups=n)
    assert param_count(wrn_cifar_layers(depth, k), conv_type, n) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("conv_type, n", [("sc", 1), ("gc2l", 4)])
def test_forward_flops_match_a_conv_hook_count(conv_type, n):
    with torch.device("meta"):
        model = create_model("wrn16_2", conv_type=conv_type, groups=n)
    flops = []
    inner = {id(c) for m in model.modules() if isinstance(m, TwoLevelGroupConv2d) for c in m.children()}

    def hook(mod: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        if isinstance(mod, TwoLevelGroupConv2d):  # Agp, R0 (N channels out) and R̄0ᵀ (N channels in)
            hw = out[0, 0].numel()
            flops.append(2 * out[0].numel() * (mod.conv.weight[0].numel() + mod.groups)
                         + 2 * hw * mod.groups * mod.restrict.weight[0].numel())
        elif isinstance(mod, nn.Conv2d) and id(mod) not in inner:
            flops.append(2 * out[0].numel() * mod.weight[0].numel())
        elif isinstance(mod, nn.Linear):
            flops.append(2 * mod.weight.numel())
    for m in model.modules():
        m.register_forward_hook(hook)
    model(torch.empty(1, 3, 32, 32, device="meta"))
    assert sum(flops) == forward_flops(wrn_cifar_layers(16, 2), conv_type, n)


def test_group_comm_bytes_counts_two_collectives_per_gc2l_layer_and_the_head():
    layers = wrn_cifar_layers(16, 2, image_size=8)
    n_gc2l = sum(1 for layer in layers if layer.replaced)
    hw = sum(layer.hw_out ** 2 for layer in layers if layer.replaced)
    assert group_comm_bytes(layers, 4, 2) == 2 * 3 * 2 * hw * 4 + 3 * 2 * (128 // 4) * 4
    assert group_comm_bytes(layers, 4, 2, conv_type="gc") == 3 * 2 * 32 * 4
    assert n_gc2l == 15  # 3 stages × 2 blocks × 2 convs + 3 shortcuts


def test_projection_rows():
    rows = project(28, 80, 4, Device(), act_bytes_per_image=1e6)
    by = {r["strategy"]: r for r in rows}
    assert set(by) == {"group", "data", "layer"}
    assert by["group"]["params_total"] == 584_032_634  # Table 2: 584.0 M
    assert by["layer"]["params_total"] == 2_331_843_034  # Table 2: 2331.8 M (SC)
    assert by["group"]["compute_s"] == pytest.approx(by["data"]["compute_s"])
    assert by["group"]["bytes_sent"] < by["data"]["bytes_sent"] / 50
    assert by["group"]["memory_bytes"] < by["data"]["memory_bytes"] < by["layer"]["memory_bytes"]
    assert project(28, 10, 32, Device(), 1e6)[0]["widened_stem"]
