"""Group parallelism for any CNN: timm and torchvision models converted by surgery, on N = 2 and 4 gloo ranks.

Each model has every eligible convolution replaced by GC-2L (tglc_zoo.convert's surgery), is sharded by
tracing (no knowledge of its layout), and must match the single-process model in float64: outputs, loss,
every gradient and buffer in train and eval mode, and the weights after one SGD step.
"""
from __future__ import annotations

import gp_workers
import pytest
from _equivalence import check_case

from tglc_zoo.distributed.launch import launch

CASES = [
    ("timm_resnet18", "gc2l", "float64", 1, True),
    ("timm_resnet50", "gc2l", "float64", 1, True),
    ("tv_resnet18", "gc2l", "float64", 1, True),
    ("tv_mobilenet_v2", "gc2l", "float64", 1, True),
    ("timm_mobilenetv3_small_se", "gc2l", "float64", 1, True),
]
KEYS = [":".join(["equivalence", *map(str, c)]) for c in CASES]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[2, 4], ids=["n2", "n4"])
def results(request):
    world = request.param
    return world, launch(gp_workers.suite, world, ([("equivalence", c) for c in CASES],), timeout=900,
                         pg_timeout=300)


@pytest.mark.parametrize("key", KEYS)
def test_matches_single_process(results, key):
    world, res = results
    check_case(res, key, world)


def test_only_the_stated_collectives(results):
    world, res = results
    for key in KEYS:
        ops = set(res[0].value[key]["comm"]["ops"])
        expected = {"coarse_allgather", "coarse_reducescatter", "head_allgather"}
        if "_se" in key:  # squeeze-excitation kept dense: its pooled features gathered, its gate sliced back
            expected |= {"gate_allgather", "slice_grad_allgather"}
        assert ops == expected, (key, ops)


@pytest.mark.parametrize("case, stem, head", [("timm_resnet18", "conv1", "fc"), ("tv_mobilenet_v2", "features.0.0",
                                                                                 "classifier.1")])
def test_stem_split_head_replicated(results, case, stem, head):
    world, res = results
    r = res[0].value[f"equivalence:{case}:gc2l:float64:1:True"]
    assert f"{stem}.weight" in r["sharded"]  # the stem computes this rank's output channels: no communication
    assert {f"{head}.weight", f"{head}.bias"} <= set(r["replicated"])
    assert all(k.startswith(head + ".") or k.endswith("num_batches_tracked") for k in r["replicated"]), r["replicated"]


def test_squeeze_excitation_costs_are_described(results):
    world, res = results
    text = res[0].value["equivalence:timm_mobilenetv3_small_se:gc2l:float64:1:True"]["describe"]
    assert f"over {world} ranks" in text
    assert "gate_allgather" in text and "slice" in text and "head_allgather" in text
    assert "all-gather of the gradient slices" in text
