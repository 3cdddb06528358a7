"""The README's examples for downstream use run as written: "Detection and segmentation", and the 1-channel
tags with timm's data tools ("Pretrained weights")."""
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from tglc_zoo.backbones import FPNBackbone, SegmentationBackbone
from tglc_zoo.data import load_dataset

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(heading: str, until: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    part = text[start:text.index(until, start + len(heading))]
    return re.findall(r"```python\n(.*?)```", part, flags=re.S)


DETECTION = _blocks("## Detection and segmentation", "\n## ")


def test_the_section_has_the_three_examples():
    assert len(DETECTION) == 3
    assert "FasterRCNN(" in DETECTION[0] and "DeepLabV3(" in DETECTION[1] and "create_grouped(" in DETECTION[2]


def test_fasterrcnn_example():
    ns: dict = {}
    exec(DETECTION[0], ns)
    assert isinstance(ns["backbone"], FPNBackbone) and ns["backbone"].out_channels == 256
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} == set(ns["losses"])
    assert len(ns["detections"]) == 2 and all(d["boxes"].shape[-1] == 4 for d in ns["detections"])
    assert type(ns["retinanet"]).__name__ == "RetinaNet"


def test_deeplabv3_example():
    ns: dict = {}
    exec(DETECTION[1], ns)
    assert isinstance(ns["backbone"], SegmentationBackbone)
    assert tuple(ns["out"]["out"].shape) == tuple(ns["out"]["aux"].shape) == (2, 21, 128, 128)


def test_converted_cnn_example():
    ns: dict = {}
    exec(DETECTION[2], ns)
    backbone = ns["backbone"]
    assert [lv["module"] for lv in backbone.body.levels] == ["layer1", "layer2", "layer3", "layer4"]
    assert not any(type(m) is torch.nn.BatchNorm2d for m in ns["resnet"].modules())
    assert list(backbone(torch.randn(1, 3, 64, 64))) == ["0", "1", "2", "3", "pool"]


def test_one_channel_timm_data_example(tmp_path, monkeypatch):
    """The snippet reads ``fmnist_png/`` relative to the working directory: 100 real test images there."""
    block = next(b for b in _blocks("## Pretrained weights", "\n## ") if "input_img_mode" in b)
    ds = load_dataset("fmnist", train=False)
    for i in range(100):
        folder = tmp_path / "fmnist_png" / str(int(ds.targets[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i, 0].numpy(), mode="L").save(folder / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(block, ns)
    x, y = next(iter(ns["loader"]))
    assert tuple(x.shape) == (100, 1, 28, 28) and os.getcwd() == str(tmp_path)
    with torch.no_grad():
        assert float((ns["model"](x).argmax(1) == y).float().mean()) > 0.8
    with pytest.raises(ValueError, match="input_img_mode='L'"):
        ns["model"](x.expand(-1, 3, -1, -1))
