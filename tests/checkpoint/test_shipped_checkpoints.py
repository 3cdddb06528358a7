"""Every checkpoint shipped under hub/ reproduces the top-1 its manifest claims, on the full test set.

The evaluation here is written independently of the training code: raw Fashion-MNIST uint8 images,
``ToTensor()`` then ``Normalize(mean, std)`` from the checkpoint's own ``pretrained_cfg``.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import functional as TF

import tglc_zoo
from tglc_zoo.util.hashing import sha256_file
from tglc_zoo.weights import load_manifest

ROOT = Path(__file__).parents[2]
SHIPPED = json.loads((ROOT / "tglc_zoo" / "weights" / "manifest.json").read_text())["weights"]
FMNIST_TAGS = sorted(t for t, e in SHIPPED.items() if e["dataset"] == "zalando-datasets/fashion_mnist")


def test_shipped_weights_fit_the_budget_and_hashes_match():
    total = sum(f.stat().st_size for f in (ROOT / "hub").rglob("*") if f.is_file()) if (ROOT / "hub").is_dir() else 0
    assert total <= 40 * 1024 * 1024
    available = load_manifest()
    for tag, entry in SHIPPED.items():
        assert tag in available, f"{tag}: manifest entry whose weights are missing ({entry.get('file')})"
        assert sha256_file(ROOT / entry["file"] / "model.safetensors") == entry["sha256"]
        assert tag in tglc_zoo.list_models(pretrained=True)


@pytest.fixture(scope="module")
def fmnist_test():
    from tglc_zoo.data import load_dataset

    ds = load_dataset("fmnist", train=False)
    return ds.images, ds.targets


@pytest.mark.slow
@pytest.mark.parametrize("tag", FMNIST_TAGS)
def test_shipped_checkpoint_reproduces_its_top1(tag, fmnist_test):
    images, targets = fmnist_test
    assert len(images) == 10_000
    model = tglc_zoo.create_model(tag, pretrained=True).eval()
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (1, 28, 28) and model.num_classes == 10
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            batch = [TF.normalize(TF.to_tensor(img.squeeze(0).numpy()), cfg["mean"], cfg["std"])
                     for img in images[start:start + 500]]
            logits = model(torch.stack(batch))
            correct += int((logits.argmax(1) == targets[start:start + 500]).sum())
    top1 = 100.0 * correct / len(images)
    claimed = tglc_zoo.pretrained_metrics(tag)["top1"]
    assert abs(top1 - claimed) <= 0.1, f"{tag}: measured {top1:.2f}%, manifest says {claimed:.2f}%"
    assert np.isfinite(top1)


def test_sc_and_gc_gc2l_shuffle_ship_at_n8_and_n16():
    expected = {"wrn16_2.fmnist"} | {f"wrn16_2_{c}_n{n}.fmnist" for c in ("gc", "gc2l", "shuffle") for n in (8, 16)}
    assert set(FMNIST_TAGS) == expected, f"missing: {sorted(expected - set(FMNIST_TAGS))}, " \
                                         f"extra: {sorted(set(FMNIST_TAGS) - expected)}"


def test_each_tag_is_its_cells_median_seed_and_states_the_cells_spread():
    """The manifest against the study's committed records: the median run of the cell ships, its top-1 is
    that run's, and the cell's mean ± std is computed from all of the cell's finished seeds."""
    study = ROOT / "docs" / "fmnist_study_full"
    recipe = json.loads((study / "study.json").read_text())["recipe"]
    records = [json.loads(p.read_text()) for p in sorted((study / "runs").glob("*.json"))]
    for tag in FMNIST_TAGS:
        entry = SHIPPED[tag]
        cell = sorted((r for r in records if f"{r['model']}.fmnist" == tag), key=lambda r: (r["test_err"], r["seed"]))
        assert cell, f"{tag}: no finished run of its cell in {study}"
        median = cell[(len(cell) - 1) // 2]
        assert entry["selected"] == "median" and entry["run_id"] == median["run_id"], tag
        assert f"recipe '{recipe}'" in entry["recipe"], tag
        assert entry["metrics"]["top1"] == round(100 * median["test_acc"], 2), tag
        top1 = [100 * r["test_acc"] for r in cell]
        assert entry["cell"]["seeds"] == sorted(r["seed"] for r in cell), tag
        assert entry["cell"]["top1_mean"] == pytest.approx(np.mean(top1), abs=0.006), tag
        assert entry["cell"]["top1_std"] == pytest.approx(np.std(top1, ddof=1) if len(top1) > 1 else 0.0, abs=0.006)
        card = (ROOT / entry["file"] / "README.md").read_text()
        assert f"{entry['metrics']['top1']:.2f}" in card and entry["run_id"] in card, tag


def test_torch_hub_local_clone_loads_shipped_weights_offline(monkeypatch):
    """``torch.hub.load(<clone>, "<arch>_gc2l_n16", source="local", pretrained=True)`` works with no network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tag = "wrn16_2_gc2l_n16.fmnist"
    name = tag.split(".")[0]
    model = torch.hub.load(str(ROOT), name, source="local", pretrained=True)
    assert model.pretrained_cfg["tag"] == tag.split(".", 1)[1]
    got, want = model.state_dict(), tglc_zoo.create_model(tag, pretrained=True).state_dict()
    assert list(got) == list(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
