"""Group parallelism is exact against one process, or refuses by name: never silently different.

Random small CNNs (hypothesis, derandomised) of GC-2L/GC layers, BatchNorm, activations, residual adds,
pooling, SE gates, tied layers, frozen layers and ops that read ``x.shape``, on 2 gloo ranks in float64:
each one's logits, gradients and one SGD step equal the single process's, or ``group_parallel`` raises
a :class:`GroupParallelError` that names the module.
"""
from __future__ import annotations

import re

import pytest
import random_cnns
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tglc_zoo.distributed.launch import launch

pytestmark = pytest.mark.slow
EXACT = 1e-12

# the attacks that computed something else, or crashed with a raw error, before
REGRESSIONS = [
    ["gc2l", "tied_gc2l", "bn"],          # tied weights were untied (3e-2 off), or crashed with inplace=True
    ["gc2l", "bn", "tied_bn", "relu"],
    ["gc2l", "scale_by_channels", "bn"],  # x / x.shape[1] ** 0.5 used C/N
    ["gc2l", "mul_by_size", "bn"],        # x * x.size(1) used C/N
    ["gc2l", "se_gate", "bn"],            # y.view(b, c, 1, 1) with c from x.size(): a raw size mismatch
    ["gc2l", "positional", "bn"],         # x + pe[:, :x.size(1)]
    ["gc2l", "zeros_like_shape", "bn"],   # torch.zeros((B, x.size(1), 1, 1))
    ["gc2l", "cat_batch", "bn"],          # torch.cat on dim 0 with a replicated tensor
]
REFUSED = {
    ("gc2l", "tied_to_head", "bn"): r"tied between 'layers.l1.bias'.*and 'pre.bias'",
    ("gc2l", "dense_conv", "bn"): r"cannot split 'layers.l1': Conv2d",
    ("gc2l", "layer_norm", "bn"): r"cannot split 'layers.l1': LayerNorm",
    ("gc2l", "channel_mean", "bn"): r"Tensor.mean on a channel-split activation",
}


def _check(results: list[dict]) -> None:  # type: ignore[type-arg]
    for r in results:
        assert "raw" not in r, f"{r['ops']}: a raw error instead of a refusal: {r['raw']}"
        if "refused" in r:
            assert re.search(r"'[^']+'", r["refused"]), f"{r['ops']}: the refusal names no module: {r['refused']}"
            continue
        worst = max(r["logits"], r["grad"], r["step"])
        assert worst < EXACT, f"{r['ops']}: group parallelism differs from one process by {worst:.2e}"


@pytest.mark.parametrize("inplace", [False, True])
def test_the_attacks_are_exact_or_refused_by_name(inplace: bool) -> None:
    specs = REGRESSIONS + [list(k) for k in REFUSED]
    results = launch(random_cnns.check_models, 2, (specs, inplace), timeout=300, pg_timeout=60)
    for rank_results in (r.value for r in results):
        _check(rank_results)
        by_ops = {tuple(r["ops"]): r for r in rank_results}
        for ops in REGRESSIONS:
            assert "refused" not in by_ops[tuple(ops)], by_ops[tuple(ops)]
        for ops, pattern in REFUSED.items():
            assert re.search(pattern, by_ops[ops].get("refused", "")), by_ops[ops]


MODELS = st.lists(st.lists(st.sampled_from(random_cnns.OPS), min_size=1, max_size=5).map(lambda ops: ["gc2l", *ops]),
                  min_size=30, max_size=30, unique_by=tuple)


@settings(max_examples=1, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs=MODELS)
def test_random_cnns_are_exact_or_refused_by_name(specs: list[list[str]]) -> None:
    results = launch(random_cnns.check_models, 2, (specs,), timeout=400, pg_timeout=60)
    for r in results:
        _check(r.value)
    exact = sum("refused" not in r for r in results[0].value)
    assert 0 < exact < len(specs)  # the draw holds both kinds
