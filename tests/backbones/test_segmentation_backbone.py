"""A dilated GC-2L backbone under torchvision's DeepLabV3 (``DeepLabHead`` + ``FCNHead``): forward and backward
at the input's size, on real Fashion-MNIST canvases."""
import pytest
import torch
import torch.nn.functional as F
from detection_set import CANVAS, fmnist_canvases
from torchvision.models.segmentation import DeepLabV3
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from tglc_zoo.backbones import segmentation_backbone
from tglc_zoo.convert import create_grouped


def _masks(targets):
    """Per-pixel classes: each box's label inside it, background (0) elsewhere."""
    out = torch.zeros(len(targets), CANVAS, CANVAS, dtype=torch.long)
    for mask, t in zip(out, targets):
        for (x1, y1, x2, y2), label in zip(t["boxes"].int().tolist(), t["labels"].tolist()):
            mask[y1:y2, x1:x2] = label
    return out


def test_deeplabv3_on_the_dilated_backbone_forward_and_backward():
    torch.manual_seed(0)
    backbone = segmentation_backbone("wrn34_2_gc2l_n8", output_stride=8, aux=True)
    assert (backbone.out_channels, backbone.aux_channels, backbone.output_stride) == (1024, 512, 8)
    model = DeepLabV3(backbone, DeepLabHead(backbone.out_channels, 11), FCNHead(backbone.aux_channels, 11)).train()
    images, targets = fmnist_canvases(2, items=3, seed=2)
    x = torch.stack(images)
    feats = backbone(x)
    assert [tuple(f.shape) for f in feats.values()] == [(2, 1024, 16, 16), (2, 512, 16, 16)]  # dilated, not strided
    out = model(x)
    assert tuple(out["out"].shape) == tuple(out["aux"].shape) == (2, 11, CANVAS, CANVAS)
    loss = F.cross_entropy(out["out"], _masks(targets)) + 0.5 * F.cross_entropy(out["aux"], _masks(targets))
    loss.backward()
    missing = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_given_model_must_already_have_the_output_stride():
    model = create_grouped("torchvision:resnet18", conv_type="gc2l", groups=2, method="block_jacobi")
    with pytest.raises(ValueError, match=r"has reduction 32, not output_stride=8; build it dilated .*"
                                         r"replace_stride_with_dilation"):
        segmentation_backbone(model, output_stride=8)
    dilated = create_grouped("resnet18", conv_type="gc2l", groups=2, method="block_jacobi", output_stride=8)
    backbone = segmentation_backbone(dilated, output_stride=8)
    assert tuple(backbone(torch.randn(1, 3, 64, 64))["out"].shape) == (1, 512, 8, 8)
