"""Offline parts of group parallelism (no process group): the shard plan, rank files, and clear errors."""
from __future__ import annotations

import pytest
import torch

from tglc_zoo import create_model
from tglc_zoo.distributed import (
    GroupParallelError,
    group_parallel,
    load_rank_state_dict,
    make_plan,
    merge_rank_files,
    save_rank_files,
)
from tglc_zoo.distributed.plan import ShardPlan
from tglc_zoo.models import MobileNetV2, WideResNet


@pytest.mark.parametrize("build, n", [
    (lambda: create_model("wrn16_2", conv_type="gc2l", groups=4), 4),
    (lambda: create_model("wrn16_2", conv_type="gc", groups=2), 2),
    (lambda: WideResNet(depth=34, widen_factor=1, layout="imagenet", conv_type="gc2l", groups=2, num_classes=10), 2),
    (lambda: MobileNetV2(conv_type="gc2l", groups=4, num_classes=10), 4),
])
def test_plan_splits_everything_but_the_head(build, n):
    with torch.device("meta"):
        model = build()
    plan = make_plan(model)
    assert plan.world_size == n and list(plan.keys) == list(model.state_dict())
    classifier = model.pretrained_cfg.get("classifier", model._classifier_name)
    for k in plan.replicated:
        assert k.startswith(classifier + ".") or k.endswith("num_batches_tracked"), k
    for k in plan.sharded:
        assert model.state_dict()[k].shape[0] % n == 0, k
    for name, mod in model.named_modules():
        if type(mod).__name__ == "TwoLevelGroupConv2d":
            assert {f"{name}.conv.weight", f"{name}.restrict.weight", f"{name}.coarse.weight"} <= set(plan.sharded)
    assert plan == ShardPlan.from_json(plan.to_json())


def test_split_merge_and_rank_files_round_trip(tmp_path):
    model = create_model("wrn16_2", conv_type="gc2l", groups=4)
    full = model.state_dict()
    plan = make_plan(model)
    parts = plan.split(full)
    assert [p["stages.0.0.conv1.coarse.weight"].shape[0] for p in parts] == [8] * 4  # S_k: m/N = 32/4 rows
    assert [p["stages.0.0.conv1.restrict.weight"].shape[0] for p in parts] == [1] * 4  # row k of R0
    split_params = sum(full[k].numel() for k in plan.sharded)
    assert all(sum(p[k].numel() for k in plan.sharded) * 4 == split_params for p in parts)
    merged = plan.merge(parts)
    assert list(merged) == list(full) and all(torch.equal(merged[k], full[k]) for k in full)

    save_rank_files(full, plan, tmp_path / "shards")
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "group_parallel.json", *[f"rank-0000{r}-of-00004.safetensors" for r in range(4)]]
    from_files = merge_rank_files(tmp_path / "shards")
    assert list(from_files) == list(full) and all(torch.equal(from_files[k], full[k]) for k in full)
    rank2 = load_rank_state_dict(tmp_path / "shards", 2, world_size=4)
    assert all(torch.equal(rank2[k], parts[2][k]) for k in parts[2])
    with pytest.raises(GroupParallelError, match="holds 4 rank files, but the world size is 2"):
        load_rank_state_dict(tmp_path / "shards", 0, world_size=2)
    with pytest.raises(GroupParallelError, match="not a group-parallel checkpoint"):
        merge_rank_files(tmp_path)


def _saved_shards(tmp_path, groups=4):
    model = create_model("wrn16_2", conv_type="gc2l", groups=groups)
    folder = save_rank_files(model.state_dict(), make_plan(model), tmp_path / "shards")
    return model, folder


@pytest.mark.parametrize("plan_text, expected", [
    ("[1, 2, 3]", "expected a JSON object"),
    ("{not json", "not JSON"),
    ('"a string"', "expected a JSON object"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": 0, "sharded": [], "replicated": []}',
     "world_size must be a positive integer, got 0"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": -2, "sharded": [], "replicated": []}',
     "world_size must be a positive integer, got -2"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": "4", "sharded": [], "replicated": []}',
     "world_size must be a positive integer, got '4'"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": true, "sharded": [], "replicated": []}',
     "world_size must be a positive integer, got True"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": 4, "sharded": "fc.weight", "replicated": []}',
     r"\['sharded'\] must be lists"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": 4, "sharded": [1], "replicated": []}',
     "must list state-dict keys"),
    ('{"format": "tglc_zoo.group_parallel/1", "world_size": 4}', r"missing \['sharded', 'replicated'\]"),
    ('{"format": "other/9", "world_size": 4, "sharded": [], "replicated": []}', "unknown shard plan format"),
])
def test_a_damaged_plan_file_is_a_clear_error(tmp_path, plan_text, expected):
    _, folder = _saved_shards(tmp_path)
    (folder / "group_parallel.json").write_text(plan_text, encoding="utf-8")
    for load in (lambda: merge_rank_files(folder), lambda: load_rank_state_dict(folder, 0)):
        with pytest.raises(GroupParallelError, match=expected):
            load()


def test_swapped_rank_files_are_detected(tmp_path):
    model, folder = _saved_shards(tmp_path)
    a, b = folder / "rank-00001-of-00004.safetensors", folder / "rank-00002-of-00004.safetensors"
    tmp = folder / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    with pytest.raises(GroupParallelError, match="holds rank 2 of 4 .*not rank 1 of 4.*swapped or renamed"):
        load_rank_state_dict(folder, 1)
    with pytest.raises(GroupParallelError, match="swapped or renamed"):
        merge_rank_files(folder)
    load_rank_state_dict(folder, 0)  # the others are untouched
    load_rank_state_dict(folder, 3)


def test_rank_files_from_another_world_size_are_detected(tmp_path):
    model = create_model("wrn16_2", conv_type="gc2l", groups=2)
    two = save_rank_files(model.state_dict(), make_plan(model), tmp_path / "two")
    _, four = _saved_shards(tmp_path)
    (two / "rank-00000-of-00002.safetensors").replace(four / "rank-00000-of-00004.safetensors")
    with pytest.raises(GroupParallelError, match="holds rank 0 of 2"):
        merge_rank_files(four)


def test_merge_refuses_diverged_replicas():
    model = create_model("wrn16_2", conv_type="gc", groups=2)
    plan = make_plan(model)
    parts = plan.split(model.state_dict())
    parts[1]["fc.bias"] += 1
    with pytest.raises(GroupParallelError, match="'fc.bias' differs between rank 0 and rank 1"):
        plan.merge(parts)


@pytest.mark.parametrize("conv_type", ["shuffle", "flgc"])
def test_all_to_all_conv_types_are_refused(conv_type):
    model = create_model("wrn16_2", conv_type=conv_type, groups=2)
    with pytest.raises(GroupParallelError, match=rf"conv_type '{conv_type}' cannot run group-parallel.*"
                                                 r"valid choices: \['gc', 'gc2l'\]"):
        group_parallel(model)


def test_dense_model_and_world_size_mismatch_are_refused():
    with pytest.raises(GroupParallelError, match="conv_type 'sc' cannot run group-parallel"):
        make_plan(create_model("wrn16_2"))
    with pytest.raises(GroupParallelError, match="world size 4 differs from the model's groups=2.*nproc_per_node 2"):
        make_plan(create_model("wrn16_2", conv_type="gc2l", groups=2), 4)
    with pytest.raises(GroupParallelError, match="splits GC / GC-2L layers.*Linear has none; convert it first"):
        make_plan(torch.nn.Linear(2, 2))


def test_needs_a_process_group():
    with pytest.raises(GroupParallelError, match="init_process_group"):
        group_parallel(create_model("wrn16_2", conv_type="gc2l", groups=2))
