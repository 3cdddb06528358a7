"""Converted models save and load through every route of the checkpoint layer, bit for bit.

Routes: ``from_pretrained`` on the folder, on the ``.safetensors`` file and on its ``file://`` URL,
``create_model(name, pretrained=folder)``, ``torch.hub.load(<repo>, name, source="local")``, timm's
``local-dir:`` prefix, and the Hugging Face Hub (an offline cache laid out on disk).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from convert_helpers import images, randomize

import tglc_zoo
from tglc_zoo.convert import to_grouped

REPO = Path(tglc_zoo.__file__).resolve().parents[1]
CASES = {"gc2l_optimal": ("gc2l", 2, "optimal"), "gc_block_jacobi": ("gc", 2, "block_jacobi"),
         "gc2l_unregistered_n1": ("gc2l", 1, "optimal")}


@pytest.fixture(params=sorted(CASES), scope="module")
def saved(request, tmp_path_factory):
    torch.set_num_threads(1)
    conv_type, groups, method = CASES[request.param]
    src = randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))
    model = to_grouped(src, conv_type, groups, method).eval()
    folder = tglc_zoo.save_pretrained(model, tmp_path_factory.mktemp(request.param) / "ckpt",
                                      metrics={"top1": 1.0}, dataset="synthetic")
    x = images()
    with torch.no_grad():
        return model, folder, x, model(x)


def _check(loaded, saved):
    model, _, x, y = saved
    loaded.eval()
    assert loaded.pretrained_cfg["architecture"] == model.pretrained_cfg["architecture"]
    assert loaded.model_args["conv_type"] == model.model_args["conv_type"]
    assert loaded.model_args["groups"] == model.model_args["groups"]
    sd, ref = loaded.state_dict(), model.state_dict()
    assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)
    with torch.no_grad():
        assert torch.equal(loaded(x), y)


def test_folder_and_file(saved):
    folder = saved[1]
    _check(tglc_zoo.from_pretrained(folder), saved)
    _check(tglc_zoo.from_pretrained(str(folder / "model.safetensors")), saved)


def _name_and_kwargs(model):
    """A registered variant name loads as is; an unregistered N (built from the bare arch) needs its args."""
    name = model.pretrained_cfg["architecture"]
    if model.model_args["conv_type"] == "sc" or "_n" in name:
        return name, {}
    return name, dict(conv_type=model.model_args["conv_type"], groups=model.model_args["groups"])


def test_registry_with_folder(saved):
    model, folder = saved[:2]
    name, kwargs = _name_and_kwargs(model)
    _check(tglc_zoo.create_model(name, pretrained=folder, **kwargs), saved)


def test_file_url(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _check(tglc_zoo.from_pretrained((saved[1] / "model.safetensors").as_uri()), saved)


def test_torch_hub_local(saved):
    model, folder = saved[:2]
    name, kwargs = _name_and_kwargs(model)
    loaded = torch.hub.load(str(REPO), name, source="local", pretrained=str(folder), **kwargs)
    _check(loaded, saved)


def test_timm_local_dir(saved):
    _check(timm.create_model(f"local-dir:{saved[1]}", pretrained=True), saved)
    _check(tglc_zoo.create_model(f"local-dir:{saved[1]}", pretrained=True), saved)


def test_hugging_face_hub_offline_cache(saved, hf_cache):
    hf_cache("tglc/converted", saved[1])
    _check(tglc_zoo.from_pretrained("hf-hub:tglc/converted", local_files_only=True), saved)
    _check(timm.create_model("hf-hub:tglc/converted", pretrained=True), saved)
