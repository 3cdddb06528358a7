"""Group parallelism by tracing, without spawning: plans of timm / torchvision CNNs, refusals that name the module
and the op, and a one-process group that runs the sharded graph (every collective is then the identity)."""
from __future__ import annotations

import datetime

import pytest
import timm
import torch
import torch.distributed as dist
import torch.nn.functional as F
from gp_workers import build_converted
from torch import nn

from tglc_zoo.convert import GroupingSpec, build_grouped, choose_convs
from tglc_zoo.convert.base import build_base
from tglc_zoo.distributed import GroupParallelError, group_parallel, make_plan
from tglc_zoo.distributed.plan import analyse
from tglc_zoo.layers import create_conv


def _meta_converted(base: str, groups: int, **base_args) -> nn.Module:
    with torch.device("meta"):
        return build_converted(base, "gc2l", groups, **base_args)


def test_plan_of_a_timm_resnet_splits_everything_but_the_head():
    model = _meta_converted("resnet18", 4)
    plan = make_plan(model, example_input=(2, 3, 64, 64))
    assert list(plan.keys) == list(model.state_dict())
    assert "conv1.weight" in plan.sharded and "bn1.weight" in plan.sharded  # the stem: its output channels
    assert {"layer1.0.conv1.conv.weight", "layer1.0.conv1.restrict.weight", "layer1.0.conv1.coarse.weight",
            "layer4.1.bn2.running_var"} <= set(plan.sharded)
    assert all(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in plan.replicated), plan.replicated
    state = model.state_dict()
    assert all(state[k].shape[0] % 4 == 0 for k in plan.sharded)


def test_squeeze_excitation_is_gathered_and_sliced_back():
    model = _meta_converted("mobilenetv3_small_050", 2, exclude="*.se.*")
    comm = analyse(model, example_input=(2, 3, 64, 64)).communication()
    ops = [c["op"] for c in comm]
    se = sum(1 for m in model.modules() if type(m).__name__ == "SqueezeExcite")
    assert ops.count("gate_allgather") == se and ops.count("slice") == se and ops.count("head_allgather") == 1
    gate = next(c for c in comm if c["op"] == "gate_allgather")
    assert gate["per_rank"][2:] == (1, 1) and gate["backward"].startswith("none")  # pooled features only


def test_convnext_is_refused_naming_the_block_and_the_op():
    model = _meta_converted("convnext_atto", 4)  # conv_mlp: LayerNorm2d + 1x1 convs (replaced by GC-2L)
    with pytest.raises(GroupParallelError, match=r"'stages\.0\.blocks\.1\.norm': LayerNorm2d on a channel-split "
                                                 r"activation \(2, 40, 16, 16\) normalises over channels"):
        make_plan(model, example_input=(2, 3, 64, 64))


def test_regnet_grouped_conv_is_refused():
    model = _meta_converted("regnetx_002", 4)  # group width 8: conv2 has groups = C/8, not a multiple of 4 everywhere
    with pytest.raises(GroupParallelError, match=r"Conv2d \(\d+->\d+, groups=\d+\) on a channel-split activation.*"
                                                 r"its groups must be a multiple of 4"):
        make_plan(model, example_input=(2, 3, 64, 64))


def test_a_dense_conv_left_in_the_body_is_refused():
    with torch.device("meta"):
        dense = build_base("resnet18", {"num_classes": 10})
    layers = tuple(c.name for c in choose_convs(dense, 2, exclude="layer3.0.conv2") if c.replace)
    with torch.device("meta"):
        model = build_grouped(GroupingSpec("resnet18", {"num_classes": 10}, "gc2l", 2, layers))
    with pytest.raises(GroupParallelError, match=r"'layer3\.0\.conv2': Conv2d \(256->256, groups=1\).*"
                                                 r"convert it to GC / GC-2L"):
        make_plan(model, example_input=(2, 3, 64, 64))


class _Block(nn.Module):
    def __init__(self, op: str, c: int = 8, n: int = 2) -> None:
        super().__init__()
        self.op = op
        self.a = create_conv("gc2l", c, c, 3, groups=n)
        self.b = create_conv("gc2l", c, c, 3, groups=n)
        self.norm = timm.layers.LayerNorm2d(c) if op == "layernorm" else nn.GroupNorm(1, c)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "cat":
            return torch.cat([self.a(x), self.b(x)], 1)
        if self.op == "layernorm" or self.op == "groupnorm":
            return self.norm(self.a(x))
        if self.op == "softmax":
            return F.softmax(self.a(x), dim=1)
        if self.op == "random":
            return self.a(x) * torch.rand_like(x)
        if self.op == "dropout":
            return self.drop(self.a(x))
        if self.op == "branch":
            return self.a(x) if x.sum() > 0 else self.b(x)
        return self.b(self.a(x))


class _Net(nn.Module):
    def __init__(self, op: str, n: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = _Block(op, n=n)
        c = 16 if op == "cat" else 8
        self.fc = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("op, match", [
    ("cat", r"'block' \(_Block\): torch\.cat on a channel-split activation \(2, 8, 8, 8\) concatenates"),
    ("layernorm", r"'block\.norm': LayerNorm2d on a channel-split activation .* normalises over channels"),
    ("groupnorm", r"'block\.norm': GroupNorm\(1 groups\) .* span the 2 channel groups"),
    ("softmax", r"'block' \(_Block\): F\.softmax .* normalises over the channels"),
    ("random", r"'block' \(_Block\): torch\.rand_like draws random numbers"),
    ("dropout", r"'block\.drop': Dropout\(p=0\.5\) on a channel-split activation .* per rank"),
    ("branch", r"torch\.fx cannot trace _Net"),
])
def test_mixing_ops_are_refused_naming_module_and_op(op, match):
    with pytest.raises(GroupParallelError, match=match):
        make_plan(_Net(op), example_input=(2, 3, 8, 8))


def test_all_to_all_layers_in_any_model_are_refused():
    model = _Net("plain")
    model.block.b = create_conv("shuffle", 8, 8, 3, groups=2)
    with pytest.raises(GroupParallelError, match=r"conv_type 'shuffle' cannot run group-parallel"):
        make_plan(model, example_input=(2, 3, 8, 8))


def test_dropout_and_drop_path_of_a_timm_model_are_synchronised():
    model = _meta_converted("resnet18", 2, drop_rate=0.3, drop_path_rate=0.1)
    a = analyse(model, example_input=(2, 3, 32, 32))
    assert list(a.placements["train"].rewrites.values()) == [0.3]  # F.dropout(p=0.3, training=True) -> synced
    assert not a.placements["eval"].rewrites
    drop_paths = {n for n, m in model.named_modules() if isinstance(m, timm.layers.DropPath)}
    assert drop_paths and {n for n, p in a.leaves.items() if p.kind == "synced_drop_path"} == drop_paths


@pytest.fixture()
def one_process_group():
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1, timeout=datetime.timedelta(seconds=30))
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_one_rank_shard_runs_the_rewritten_graph_exactly(one_process_group):
    """N = 1: every collective is the identity, so the sharded graph (slices, gathers, parameters read
    through AttrRef, synced dropout) must reproduce the model exactly, gradients included."""
    torch.manual_seed(0)
    model = build_converted("mobilenetv3_small_050", "gc2l", 1, exclude="*.se.*").double()
    model.blocks[1][0].gamma = nn.Parameter(torch.rand(1, model.blocks[1][0].conv_pwl.out_channels, 1, 1).double())
    orig = model.blocks[1][0].forward
    model.blocks[1][0].forward = lambda x, f=orig, m=model.blocks[1][0]: f(x) * m.gamma  # a get_attr parameter
    shard = group_parallel(model, example_input=(4, 3, 64, 64))
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    for mode in (False, True):
        model.train(mode)
        shard.train(mode)
        model.zero_grad()
        shard.zero_grad()
        y = model(x)
        y.square().sum().backward()
        ys = shard(x)
        ys.square().sum().backward()
        torch.testing.assert_close(ys, y, rtol=1e-9, atol=1e-9)
        grads = dict(model.named_parameters())
        for k, p in shard.module.named_parameters():
            torch.testing.assert_close(p.grad, grads[k].grad, rtol=1e-8, atol=1e-8)
    assert "gate_allgather" in shard.comm_stats.ops and "slice_grad_allgather" in shard.comm_stats.ops


class _ViewHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = create_conv("gc2l", 8, 8, 3, groups=2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.adaptive_avg_pool2d(self.a(self.stem(x)), 1)
        return self.fc(y.view(y.size(0), -1))  # sizes read from the split tensor: no communication for them


def test_sizes_of_split_tensors_cost_nothing_and_the_head_gathers_once():
    comm = analyse(_ViewHead(), example_input=(2, 3, 8, 8)).communication()
    assert [(c["op"], c["per_rank"]) for c in comm] == [("coarse_allgather", (2, 1, 8, 8)), ("head_allgather", (2, 4))]
