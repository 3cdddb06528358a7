"""The backbone options as torchvision's ``resnet_fpn_backbone`` has them: frozen BatchNorm (also through
``create_model``), frozen early levels, the levels and extra blocks asked for, and errors naming the valid
choices; and the levels of a model without ``feature_info``, found by running it."""
import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

import tglc_zoo
from tglc_zoo.backbones import feature_levels, fpn_backbone, segmentation_backbone

TAG = "wrn16_2_gc2l_n16.fmnist"


def test_create_model_takes_frozen_batchnorm_and_checkpoints_move_between_the_forms(tmp_path):
    plain = tglc_zoo.create_model(TAG, pretrained=True).eval()
    frozen = tglc_zoo.create_model(TAG, pretrained=True, norm_layer=FrozenBatchNorm2d)  # torchvision's spelling
    assert not any(type(m) is nn.BatchNorm2d for m in frozen.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules()) == sum(
        isinstance(m, nn.BatchNorm2d) for m in plain.modules()) > 0
    assert frozen.model_args["norm_layer"] == "frozen_bn"  # kept by name: the config stays JSON
    assert list(frozen.state_dict()) == list(plain.state_dict())  # BatchNorm2d's keys, num_batches_tracked too
    x = torch.randn(4, 1, 28, 28)
    frozen.train()  # frozen statistics: training mode computes what evaluation does
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), plain(x), rtol=1e-5, atol=1e-5)
    tglc_zoo.save_pretrained(frozen, tmp_path / "frozen")
    again = tglc_zoo.from_pretrained(tmp_path / "frozen")
    assert again.model_args["norm_layer"] == "frozen_bn" and isinstance(again.stages[0][0].bn1, FrozenBatchNorm2d)
    plain.load_state_dict(again.state_dict())  # strict, both ways
    with pytest.raises(ValueError, match=r"unknown norm_layer 'frozen'.*'frozen_bn'"):
        tglc_zoo.create_model("wrn16_2", norm_layer="frozen")


def test_pretrained_backbone_freezes_bn_and_early_levels_by_default():
    """torchvision's detection defaults: with pretrained weights, frozen BatchNorm and the last 3 levels training."""
    backbone = fpn_backbone(TAG, pretrained=True, in_chans=3, out_channels=32)
    body = backbone.body.extractor
    assert not any(type(m) is nn.BatchNorm2d for m in body.modules())
    trainable = {n.split(".")[0] for n, p in body.named_parameters() if p.requires_grad}
    frozen = {n.split(".")[0] for n, p in body.named_parameters() if not p.requires_grad}
    assert frozen == {"stem"} and trainable == {"stages_0", "stages_1", "stages_2"}  # 4 levels: the last 3 train
    ref = tglc_zoo.create_model(TAG, pretrained=True, in_chans=3).state_dict()
    assert torch.equal(body.stem.conv.weight, ref["stem.conv.weight"])  # the weights loaded (stem adapted to RGB)
    out = backbone(torch.randn(1, 3, 32, 32))
    assert list(out) == ["0", "1", "2", "3", "pool"] and all(o.shape[1] == 32 for o in out.values())


@pytest.mark.parametrize("trainable_levels,frozen", [
    (0, {"stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6"}),
    (2, {"stem", "blocks.0", "blocks.1", "blocks.2"}),  # levels: blocks.0, .1, .2, .4, .6 — the last 2 train
    (5, set()),
])
def test_trainable_levels_count_from_the_last(trainable_levels, frozen):
    model = tglc_zoo.create_model("mobilenetv2_gc2l_n2")
    fpn_backbone(model, trainable_levels=trainable_levels)
    got = {".".join(n.split(".")[:2]) if n.startswith("blocks") else n.split(".")[0]
           for n, p in model.named_parameters() if not p.requires_grad}
    assert got == frozen


def test_levels_of_a_model_without_feature_info_are_found_by_running_it():
    model = torchvision.models.mobilenet_v2()
    assert [(lv["module"], lv["num_chs"], lv["reduction"]) for lv in feature_levels(model)] == [
        ("features.1", 16, 2), ("features.3", 24, 4), ("features.6", 32, 8), ("features.13", 96, 16),
        ("features", 1280, 32)]
    backbone = fpn_backbone(model, out_indices=(2, 3, 4), extra_blocks="none", out_channels=16)
    assert [tuple(o.shape) for o in backbone(torch.randn(1, 3, 64, 64)).values()] == [
        (1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2)]


def test_bad_options_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"unknown extra_blocks 'p6'.*\['pool', 'p6p7', 'none'\]"):
        fpn_backbone("wrn16_2", extra_blocks="p6")
    with pytest.raises(ValueError, match=r"feature index 4 is out of range; valid: -4 to 3"):
        fpn_backbone("wrn16_2", out_indices=(1, 4))
    with pytest.raises(ValueError, match=r"trainable_levels must be an integer from 0 .* to 4 .*got 5"):
        fpn_backbone("wrn16_2", trainable_levels=5)
    with pytest.raises(ValueError, match=r"\['in_chans', 'pretrained'\] build a model by name"):
        fpn_backbone(tglc_zoo.create_model("wrn16_2"), pretrained=True, in_chans=1)
    with pytest.raises(ValueError, match=r"unknown output_stride 3.*valid choices"):
        segmentation_backbone("wrn16_2", output_stride=3)
