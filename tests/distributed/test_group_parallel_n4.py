"""N = 4 spawned gloo ranks vs the single-process model."""
from __future__ import annotations

import gp_workers
import pytest
from _equivalence import check_case

from tglc_zoo.distributed.launch import launch

WORLD = 4
CASES = [
    ("wrn16_2", "gc2l", "float64", 3, True),
    ("wrn16_2", "gc", "float64", 3, True),
    ("wrn16_2", "gc2l", "float32", 3, True),
    ("wrn34_1_imagenet", "gc", "float64", 3, True),
    ("mobilenetv2", "gc", "float64", 3, True),
    ("mobilenetv2", "gc2l", "float64", 3, True),
    # float32 MobileNetV2: outputs and gradients only. With 4 images of 64×64 it is ill-conditioned in
    # float32: its 3-step SGD trajectory turns round-off into O(0.1) differences, and for GC-2L even the
    # gradients do — the *single-process* float32 model run in channels_last (other conv kernels) is
    # 0.11 away from float64 at blocks.3.3.conv_dw, as the shard is. float64 shows the shard is exact.
    ("mobilenetv2", "gc", "float32", 0, True),
]
KEYS = [":".join(["equivalence", *map(str, c)]) for c in CASES]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results():
    return launch(gp_workers.suite, WORLD, ([("equivalence", c) for c in CASES],), timeout=480, pg_timeout=120)


@pytest.mark.parametrize("key", KEYS)
def test_matches_single_process(results, key):
    check_case(results, key, WORLD)


def test_ranks_agree_on_bytes(results):
    sent = {r.value[KEYS[0]]["bytes_per_step"] for r in results}
    assert len(sent) == 1 and sent.pop() > 0
