"""A new family is one block class plus one ``ArchSpec``.

A bottleneck pre-activation family is defined in this file (the block and its spec, below) and registered with
one call; with no other edit it gets its model names, timm's registry and default configs, timm's model
contract (the checks of ``test_contract.py``), ``features_only`` through timm's extractors, and group
parallelism over 2 gloo ranks.
"""
import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from model_helpers import check_contract_real
from timm.models import get_pretrained_cfg
from torch import nn

import tglc_zoo
from tglc_zoo.archs import CIFAR10_CFG, ArchSpec
from tglc_zoo.distributed import group_parallel
from tglc_zoo.distributed.launch import launch
from tglc_zoo.layers import GROUPED_CONV_TYPES, TwoLevelGroupConv2d
from tglc_zoo.models import StagedNet, StageSpec, StemSpec, make_drop_path
from tglc_zoo.registry import register_arch, unregister_arch


# -- the family: one block class and one spec ------------------------------------------------------------
class PreActBottleneck(nn.Module):
    """BN-ReLU-1×1 → BN-ReLU-3×3(stride) → BN-ReLU-1×1 (4× expansion); a 1×1 shortcut on the activated input."""

    def __init__(self, in_chs, out_chs, stride, make_conv, name, drop_path=0.0, dilation=1, first_dilation=1):
        super().__init__()
        mid = out_chs // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(in_chs), make_conv(f"{name}.conv1", in_chs, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = make_conv(f"{name}.conv2", mid, mid, 3, stride, dilation=first_dilation)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), make_conv(f"{name}.conv3", mid, out_chs, 1)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = (make_conv(f"{name}.shortcut", in_chs, out_chs, 1, stride)
                         if stride != 1 or in_chs != out_chs else None)
        self.drop_path = make_drop_path(drop_path)

    def forward(self, x):
        act = self.act(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(act)
        out = self.conv2(self.act(self.bn2(self.conv1(act))))
        return self.drop_path(self.conv3(self.act(self.bn3(out)))) + shortcut


SPEC = ArchSpec(StagedNet, dict(block=PreActBottleneck, stem=StemSpec(16), final_norm_act=True,
                                stages=(StageSpec(2, 64), StageSpec(1, 128, 2), StageSpec(1, 256, 2))),
                "cifar10", 4, groups=(2, 4), cfg=CIFAR10_CFG)
# ------------------------------------------------------------------------------------------------------

ARCH = "preact_bottleneck_test"
NAMES = [ARCH] + [f"{ARCH}_{t}_n{n}" for t in GROUPED_CONV_TYPES for n in (2, 4)]


@pytest.fixture(scope="module", autouse=True)
def registered():
    names = register_arch(ARCH, SPEC)
    yield names
    unregister_arch(ARCH)


def test_names_and_timm_registration(registered):
    assert registered == NAMES and tglc_zoo.list_models(f"{ARCH}*") == sorted(NAMES)
    assert all(timm.is_model(n) for n in NAMES) and set(timm.list_models(f"{ARCH}*")) == set(NAMES)
    torch.manual_seed(3)
    ours = tglc_zoo.create_model(f"{ARCH}_gc2l_n4", num_classes=5)
    torch.manual_seed(3)
    theirs = timm.create_model(f"{ARCH}_gc2l_n4", num_classes=5)
    assert type(theirs) is StagedNet and ours.model_args["conv_type"] == "gc2l" and ours.model_args["groups"] == 4
    assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.state_dict().items())
    assert sum(isinstance(m, TwoLevelGroupConv2d) for m in ours.modules()) == 4 * 3 + 3  # every conv but the stem
    default = get_pretrained_cfg(ARCH).to_dict()  # timm's default config describes what the untagged name builds
    model = tglc_zoo.create_model(ARCH)
    assert default["architecture"] == ARCH and tuple(default["input_size"]) == (3, 32, 32)
    assert tuple(model.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:]) == tuple(default["pool_size"]) == (8, 8)
    with pytest.raises(ValueError, match=rf"architecture '{ARCH}' would register names that exist already"):
        register_arch(ARCH, SPEC)
    with pytest.raises(ValueError, match=r"does not take the argument\(s\) \['block'\]"):
        tglc_zoo.create_model(ARCH, block=nn.Identity)  # the spec's arguments are the architecture's


@pytest.mark.parametrize("name", NAMES)
def test_contract(name):
    check_contract_real(name)


@pytest.mark.parametrize("feature_cls", ["list", "fx"])
def test_features_only(feature_cls):
    torch.manual_seed(0)
    model = tglc_zoo.create_model(f"{ARCH}_gc2l_n2").eval()
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        ("stem", 16, 1), ("stages.0", 64, 1), ("stages.1", 128, 2), ("stages.2", 256, 4)]
    torch.manual_seed(0)
    backbone = tglc_zoo.create_model(f"{ARCH}_gc2l_n2", features_only=True, out_indices=(1, 3),
                                     feature_cls=feature_cls).eval()  # the same weights: the same seed
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = model.forward_intermediates(x, indices=[1, 3], intermediates_only=True)
        got = backbone(x)
    assert backbone.feature_info.channels() == [64, 256] and backbone.feature_info.reduction() == [1, 4]
    assert [tuple(t.shape) for t in got] == [(2, 64, 16, 16), (2, 256, 4, 4)]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    dilated = tglc_zoo.create_model(f"{ARCH}_gc2l_n2", features_only=True, output_stride=2)
    assert dilated.feature_info.reduction() == [1, 1, 2, 2]


def group_parallel_worker(rank, world):
    """On each rank: register the family, build its GC-2L model, shard it, and compare one training step with
    the single-process model (float64)."""
    register_arch(ARCH, SPEC)
    torch.manual_seed(1234)
    model = tglc_zoo.create_model(f"{ARCH}_gc2l_n{world}", num_classes=10).double()
    ref = copy.deepcopy(model)
    shard = group_parallel(model, example_input=(4, 3, 8, 8))
    g = torch.Generator().manual_seed(100)
    x, y = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g)
    ref.train()
    shard.train()
    logits_ref, logits = ref(x), shard(x)
    for m, out in ((ref, logits_ref), (shard, logits)):
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        F.cross_entropy(out, y).backward()
        opt.step()
    full, want = shard.full_state_dict(), ref.state_dict()
    local = sum(p.numel() for p in shard.parameters())
    return dict(logits=float((logits - logits_ref).abs().max()), scale=float(logits_ref.abs().max()),
                keys=list(full) == list(want), state=max(float((full[k].double() - want[k].double()).abs().max())
                                                         for k in want),
                coarse_calls=shard.comm_stats.as_dict()["ops"]["coarse_allgather"]["calls"],
                local_params=local, full_params=sum(p.numel() for p in ref.parameters()))


def test_group_parallel_on_two_ranks():
    results = launch(group_parallel_worker, 2, timeout=300, pg_timeout=120)
    for r in results:
        v = r.value
        assert v["keys"] and v["scale"] > 1e-3
        assert v["logits"] < 1e-10 * v["scale"] and v["state"] < 1e-10, v
        assert v["coarse_calls"] == 4 * 3 + 3  # one all-gather of the coarse channels per GC-2L layer
        assert v["local_params"] < 0.6 * v["full_params"]  # each rank holds about half the model
