"""A model wrapped by torch.compile, DistributedDataParallel or DataParallel is converted unwrapped (with a logged
warning), so that it takes its own route and saves and loads like the model itself."""
from __future__ import annotations

import logging

import timm
import torch
import torch.distributed as dist
from convert_helpers import images, randomize
from torch import nn

import tglc_zoo
from tglc_zoo.convert import to_grouped


def _roundtrip(model: nn.Module, folder, x: torch.Tensor) -> None:
    tglc_zoo.save_pretrained(model, folder)
    with torch.no_grad():
        assert torch.equal(tglc_zoo.from_pretrained(folder).eval()(x), model(x))


def test_compiled_and_data_parallel_models_are_unwrapped(tmp_path, caplog):
    dense = randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))
    with caplog.at_level(logging.WARNING, logger="tglc_zoo.convert.model"):
        conv = to_grouped(torch.compile(dense), "gc2l", 2)
    assert "converts the WideResNet inside torch.compile and returns it unwrapped" in caplog.text
    assert "wrap it again after the conversion" in caplog.text
    assert type(conv) is type(dense) and conv.pretrained_cfg["architecture"] == "wrn16_2_gc2l_n2"  # the zoo route
    assert [r.name for r in conv.conversion_report] == [r.name for r in to_grouped(dense, "gc2l", 2).conversion_report]
    _roundtrip(conv, tmp_path / "compiled", images(size=8))
    nested = to_grouped(nn.DataParallel(torch.compile(dense)), "gc", 2)
    assert type(nested) is type(dense) and nested.pretrained_cfg["architecture"] == "wrn16_2_gc_n2"


def test_a_ddp_wrapped_timm_model_is_unwrapped(tmp_path, caplog):
    dense = randomize(timm.create_model("resnet10t", num_classes=3, in_chans=1))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(dense)
        with caplog.at_level(logging.WARNING, logger="tglc_zoo.convert.model"):
            conv = to_grouped(ddp, "gc2l", 2, input_size=(1, 16, 16))
    finally:
        dist.destroy_process_group()
    assert "converts the ResNet inside DistributedDataParallel" in caplog.text
    assert type(conv) is type(dense) and conv.model_args["base"] == "resnet10t"
    assert conv.conversion_report[0].name == "conv1.3"  # not "module.conv1.3"
    _roundtrip(conv.eval(), tmp_path / "ddp", images(size=16))


def test_a_plain_model_is_not_unwrapped(caplog):
    class _Holder(nn.Module):  # a submodule called "module" is not a wrapper
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Conv2d(4, 4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.module(x)

    with caplog.at_level(logging.WARNING, logger="tglc_zoo.convert.model"):
        conv = to_grouped(_Holder(), "gc", 2, input_size=(2, 8, 8))
    assert type(conv).__name__ == "_Holder" and conv.conversion_report[0].name == "module.1"
    assert "unwrapped" not in caplog.text

