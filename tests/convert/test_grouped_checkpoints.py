"""Converted timm / torchvision CNNs as checkpoints: ``save_pretrained`` writes the generic architecture
``tglc_grouped`` with a grouping spec, and every route rebuilds the model with identical outputs."""
from __future__ import annotations

import json

import pytest
import timm
import torch
import torchvision
from convert_helpers import images, randomize

import tglc_zoo
from tglc_zoo.convert import ConversionError, GroupingSpec, create_grouped, to_grouped
from tglc_zoo.errors import TglcZooError

CASES = {
    "timm_resnet10t": lambda: create_grouped("resnet10t", conv_type="gc2l", groups=4, num_classes=5, in_chans=1,
                                             input_size=(1, 32, 32)),
    "tv_mobilenet_v2": lambda: create_grouped("torchvision:mobilenet_v2", conv_type="gc", groups=2, num_classes=5,
                                              method="block_jacobi", input_size=(3, 32, 32)),
}


@pytest.fixture(params=sorted(CASES), scope="module")
def saved(request, tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = randomize(CASES[request.param]())  # every tensor distinct: a wrong load cannot pass by luck
    folder = tglc_zoo.save_pretrained(model, tmp_path_factory.mktemp(request.param) / "ckpt", metrics={"top1": 1.0})
    x = images(chans=model.model_args["base_args"].get("in_chans", 3), size=32)
    with torch.no_grad():
        return model, folder, x, model(x)


def _check(loaded, saved):
    model, _, x, y = saved
    loaded.eval()
    assert type(loaded) is type(model) and loaded.model_args == model.model_args
    sd, ref = loaded.state_dict(), model.state_dict()
    assert list(sd) == list(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    with torch.no_grad():
        assert torch.equal(loaded(x), y)
    for key in ("mean", "std", "interpolation", "crop_pct", "classifier", "first_conv"):
        assert loaded.pretrained_cfg.get(key) == model.pretrained_cfg.get(key), key


def test_config_names_the_base_and_the_grouping(saved):
    model, folder = saved[:2]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "tglc_grouped" and config["num_classes"] == 5
    args = config["model_args"]
    assert args["base"] == model.grouping.base and args["groups"] == model.grouping.groups
    assert args["layers"] == list(model.grouping.layers) and args["base_args"]["num_classes"] == 5
    assert "url" not in config["pretrained_cfg"] and "hf_hub_id" not in config["pretrained_cfg"]


def test_from_pretrained_folder_and_file(saved):
    folder = saved[1]
    _check(tglc_zoo.from_pretrained(folder), saved)
    _check(tglc_zoo.from_pretrained(str(folder / "model.safetensors")), saved)


def test_timm_local_dir(saved):
    _check(timm.create_model(f"local-dir:{saved[1]}", pretrained=True), saved)
    _check(tglc_zoo.create_model(f"local-dir:{saved[1]}", pretrained=True), saved)
    fresh = timm.create_model(f"local-dir:{saved[1]}", pretrained=False)  # the architecture alone
    assert fresh.model_args == saved[0].model_args and not torch.equal(
        next(iter(fresh.state_dict().values())), next(iter(saved[0].state_dict().values())))


def test_hugging_face_hub_offline_cache(saved, hf_cache):
    hf_cache("tglc/grouped", saved[1])
    _check(timm.create_model("hf-hub:tglc/grouped", pretrained=True), saved)
    _check(tglc_zoo.from_pretrained("hf-hub:tglc/grouped", local_files_only=True), saved)


def test_new_head_keeps_the_body(saved):
    model, folder = saved[:2]
    loaded = tglc_zoo.from_pretrained(folder, num_classes=3)
    head = loaded.pretrained_cfg["classifier"]
    assert loaded.get_submodule(head).out_features == 3 and loaded.pretrained_cfg["num_classes"] == 3
    ref = model.state_dict()
    body = [k for k in loaded.state_dict() if not k.startswith(head + ".")]
    assert body and all(torch.equal(loaded.state_dict()[k], ref[k]) for k in body)
    assert loaded.model_args["base_args"]["num_classes"] == 3


def test_an_unrecognised_torchvision_model_needs_its_base_arguments(tmp_path):
    dense = randomize(torchvision.models.mobilenet_v2(num_classes=4, dropout=0.0))  # not the builder's default
    conv = to_grouped(dense, "gc", 2, "block_jacobi", input_size=(3, 32, 32))
    assert conv.grouping.base is None
    with pytest.raises(ConversionError, match=r"records no base model.*to_grouped\(\.\.\., base=, base_args=\)"):
        tglc_zoo.save_pretrained(conv, tmp_path / "a")
    wrong = to_grouped(dense, "gc", 2, "block_jacobi", base="torchvision:mobilenet_v2", input_size=(3, 32, 32))
    with pytest.raises(ConversionError, match=r"does not rebuild this model \(module structure differs: "
                                              r"'\(0\): Dropout\(p=0\.0"):
        tglc_zoo.save_pretrained(wrong, tmp_path / "b")
    assert not (tmp_path / "b").exists()  # refused before anything is written
    right = to_grouped(dense, "gc", 2, "block_jacobi", base="torchvision:mobilenet_v2",
                       base_args={"dropout": 0.0, "num_classes": 4}, input_size=(3, 32, 32))
    folder = tglc_zoo.save_pretrained(right, tmp_path / "c")
    x = images(chans=3, size=32)
    with torch.no_grad():
        assert torch.equal(tglc_zoo.from_pretrained(folder).eval()(x), right(x))


def test_bad_grouping_specs_are_named():
    with pytest.raises(ConversionError, match=r"unknown arguments \['grups'\].*valid: \['base'"):
        GroupingSpec.from_model_args({"base": "resnet18", "conv_type": "gc2l", "groups": 2, "layers": [], "grups": 2})
    with pytest.raises(ConversionError, match=r"cannot convert to conv_type 'flgc'"):
        GroupingSpec.from_model_args({"base": "resnet18", "conv_type": "flgc", "groups": 2, "layers": []})
    with pytest.raises(TglcZooError, match=r"resnet18 has no nn.Conv2d named \['layer9.conv'\]"):
        timm.create_model("tglc_grouped", base="resnet18", conv_type="gc2l", groups=2, layers=["layer9.conv"])
