"""Which seed of a cell ships, when shipped weights are replaced, and which old tags a study removes."""
import pytest

from experiments.fmnist_study.records import RunRecord
from experiments.fmnist_study.ship import cell_stats, needs_publish, prune_tags, select_per_cell


def _rec(conv_type, n, seed, err):
    model = "wrn16_2" if conv_type == "sc" else f"wrn16_2_{conv_type}_n{n}"
    return RunRecord(arch="wrn16_2", conv_type=conv_type, groups=n, seed=seed, model=model, run_id=f"{model}_s{seed}",
                     test_acc=1 - err, test_err=err, best_test_acc=1 - err, train_loss=(0.5,), test_err_curve=(err,),
                     epochs=1, train_time_s=1.0, params=1000, hardware="cpu", finished_at="2026-01-01T00:00:00Z")


def test_median_seed_is_the_middle_one_and_best_is_the_lowest_error():
    recs = [_rec("gc2l", 16, 0, 0.080), _rec("gc2l", 16, 1, 0.070), _rec("gc2l", 16, 2, 0.075),
            _rec("gc", 16, 0, 0.09), _rec("gc", 16, 1, 0.10), _rec("sc", 1, 0, 0.06), _rec("gc", 8, 0, 0.2)]
    cells = {("gc2l", 16), ("gc", 16), ("sc", 1)}
    median = select_per_cell(recs, cells, "median")
    assert set(median) == cells  # the gc N=8 record is not a shipped cell
    assert median[("gc2l", 16)][0].seed == 2
    assert median[("gc", 16)][0].seed == 0  # two seeds: the lower-error middle one
    assert len(median[("gc2l", 16)][1]) == 3
    assert select_per_cell(recs, cells, "best")[("gc2l", 16)][0].seed == 1
    with pytest.raises(ValueError, match=r"unknown selection 'worst'; valid choices: \['median', 'best'\]"):
        select_per_cell(recs, cells, "worst")


def test_cell_stats_are_top1_mean_and_sample_std():
    stats = cell_stats([_rec("gc", 8, 2, 0.10), _rec("gc", 8, 0, 0.12), _rec("gc", 8, 1, 0.14)])
    assert stats == {"seeds": [0, 1, 2], "top1_mean": 88.0, "top1_std": 2.0}
    assert cell_stats([_rec("gc", 8, 0, 0.10)])["top1_std"] == 0.0


def test_weights_are_republished_when_the_run_or_the_recipe_changes(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    rec = _rec("gc", 8, 0, 0.1)
    entry = {"run_id": rec.run_id, "recipe": "8 epochs"}
    assert not needs_publish(entry, rec, "8 epochs", tmp_path)
    assert needs_publish(entry, rec, "5 epochs on 20k images", tmp_path)  # same run name, another study
    assert needs_publish({**entry, "run_id": "wrn16_2_gc_n8_s1"}, rec, "8 epochs", tmp_path)
    assert needs_publish(None, rec, "8 epochs", tmp_path)
    assert needs_publish(entry, rec, "8 epochs", tmp_path / "missing")


def test_prune_removes_only_this_studys_other_tags(tmp_path):
    hub = tmp_path / "hub"
    for name in ("wrn16_2_flgc_n4.fmnist", "wrn16_2_gc2l_n16.fmnist", "wrn16_4.cifar"):
        (hub / name).mkdir(parents=True)
        (hub / name / "model.safetensors").write_bytes(b"x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    fm = "zalando-datasets/fashion_mnist"
    weights = {
        "wrn16_2_flgc_n4.fmnist": {"file": "hub/wrn16_2_flgc_n4.fmnist", "dataset": fm},
        "wrn16_2_gc2l_n16.fmnist": {"file": "hub/wrn16_2_gc2l_n16.fmnist", "dataset": fm},
        "wrn16_4.cifar": {"file": "hub/wrn16_4.cifar", "dataset": "cifar10"},
        "wrn16_2_gc_n4.fmnist": {"file": "elsewhere", "dataset": fm},  # not under hub/: its files stay
        "wrn16_2.fmnist": {"file": "hub/wrn16_2.fmnist", "dataset": "another/fmnist"},
    }
    logs: list[str] = []
    removed = prune_tags(weights, {"wrn16_2_gc2l_n16.fmnist"}, tag="fmnist", dataset=fm, repo_root=tmp_path,
                         log=logs.append)
    assert removed == ["wrn16_2_flgc_n4.fmnist", "wrn16_2_gc_n4.fmnist"]
    assert set(weights) == {"wrn16_2_gc2l_n16.fmnist", "wrn16_4.cifar", "wrn16_2.fmnist"}
    assert not (hub / "wrn16_2_flgc_n4.fmnist").exists() and outside.is_dir()
    assert (hub / "wrn16_2_gc2l_n16.fmnist").is_dir() and (hub / "wrn16_4.cifar").is_dir()
    assert len(logs) == 2 and "wrn16_2_flgc_n4.fmnist" in logs[0]
