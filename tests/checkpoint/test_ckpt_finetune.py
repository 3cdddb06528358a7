"""Fine-tuning: any source -> new head for a new dataset -> frozen body or lower body lr -> new checkpoint."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ckpt_helpers import make_model
from huggingface_hub import ModelCard

import tglc_zoo
from tglc_zoo.data import build_datasets
from tglc_zoo.training.finetune import FinetuneConfig, body_and_head_groups, finetune, save_finetuned

REPO = Path(tglc_zoo.__file__).resolve().parents[1]
NAME = "wrn16_2_gc2l_n2"


@pytest.fixture(scope="module")
def digits():
    train, test, info = build_datasets("digits", augment=False)
    return torch.utils.data.Subset(train, range(96)), torch.utils.data.Subset(test, range(64)), info


@pytest.fixture
def base(tmp_path):
    model = make_model(NAME, num_classes=3, in_chans=3)
    return model, tglc_zoo.save_pretrained(model, tmp_path / "base")


def _run(base_folder, digits, **cfg):
    train, test, info = digits
    config = FinetuneConfig(epochs=1, batch_size=32, lr=0.05, **cfg)
    return finetune(base_folder, train, test, num_classes=info.num_classes, in_chans=info.in_chans,
                    label_names=info.label_names, input_size=info.input_size, mean=info.mean, std=info.std,
                    config=config)


def test_frozen_body_trains_only_the_head(base, digits):
    src, folder = base
    model, metrics = _run(folder, digits, body_lr_scale=0.0)
    assert model.num_classes == 10 and model.stem.conv.weight.shape[1] == 1
    ref = src.state_dict()
    own = model.state_dict()
    body = [k for k in own if not k.startswith("fc.") and k != "stem.conv.weight"]
    assert all(torch.equal(own[k], ref[k]) for k in body)  # weights and BN statistics untouched
    fresh = tglc_zoo.from_pretrained(folder, num_classes=10, in_chans=1)
    assert not torch.equal(model.fc.weight, fresh.fc.weight)  # the head did train
    assert set(metrics) == {"top1", "loss"} and 0 <= metrics["top1"] <= 100
    assert all(p.requires_grad for p in model.parameters())


def test_lower_body_lr_moves_the_body_less(base, digits):
    src, folder = base
    ref = src.state_dict()
    moved = {}
    for scale in (0.01, 1.0):
        model, _ = _run(folder, digits, body_lr_scale=scale)
        w = model.state_dict()["stages.1.0.conv1.conv.weight"]
        moved[scale] = float((w - ref["stages.1.0.conv1.conv.weight"]).abs().sum())
    assert 0 < moved[0.01] < moved[1.0]


def test_param_groups():
    model = make_model(NAME)
    groups = body_and_head_groups(model, FinetuneConfig(lr=0.1, body_lr_scale=0.5))
    assert [g["lr"] for g in groups] == [0.1, 0.05]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="body_lr_scale"):
        FinetuneConfig(body_lr_scale=2.0)


def test_saved_checkpoint_names_its_base_and_reloads(base, digits, tmp_path):
    _, folder = base
    model, metrics = _run(folder, digits, body_lr_scale=0.1)
    out = save_finetuned(model, tmp_path / "ft", base_model="hf-hub:org/base", metrics=metrics, dataset="digits",
                         config=FinetuneConfig(epochs=1))
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "org/base" and card.data.datasets == ["digits"]
    assert "Fine-tuned from `hf-hub:org/base`" in card.text
    back = tglc_zoo.from_pretrained(out).eval()
    assert back.pretrained_cfg["label_names"] == [str(i) for i in range(10)]
    assert back.pretrained_cfg["input_size"] == (1, 8, 8) and back.pretrained_cfg.get("tag") is None
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(x), model.eval()(x))


def test_script_end_to_end(base, tmp_path):
    _, folder = base
    out = tmp_path / "ft-cli"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "finetune.py"), str(folder), "--dataset", "digits",
                           "--output", str(out), "--epochs", "1", "--limit-train-batches", "2", "--freeze-body",
                           "--batch-size", "16", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "saved" in proc.stdout
    card = ModelCard.load(out / "README.md")
    assert f"Fine-tuned from `{folder}`" in card.text and card.data.base_model is None  # a path, not a repo id
    assert tglc_zoo.from_pretrained(out).num_classes == 10
