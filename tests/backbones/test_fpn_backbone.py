"""GC-2L backbones under torchvision's real detectors, trained on a small detection set made of real
Fashion-MNIST items (``detection_set.py``): the loss falls on a fixed batch and evaluation returns boxes.
A CNN converted by ``create_grouped`` (torchvision's and timm's ResNet-18) is a backbone the same way."""
import pytest
import torch
from detection_set import CANVAS, fmnist_canvases
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet

from tglc_zoo.backbones import FPNBackbone, fpn_backbone
from tglc_zoo.convert import create_grouped
from tglc_zoo.layers import TwoLevelGroupConv2d


@pytest.fixture(scope="module")
def batch():
    return fmnist_canvases(2, items=3, seed=1)


def test_the_detection_set_holds_real_items_in_their_boxes(batch):
    images, targets = batch
    for img, t in zip(images, targets):
        assert img.shape == (3, CANVAS, CANVAS) and torch.equal(img[0], img[1])
        assert t["boxes"].shape == (3, 4) and bool(((t["labels"] >= 1) & (t["labels"] <= 10)).all())
        assert t["masks"].shape == (3, CANVAS, CANVAS) and torch.equal(t["masks"].amax(0).bool(), img[0] > 0)
        inside = torch.zeros(CANVAS, CANVAS, dtype=torch.bool)
        for x1, y1, x2, y2 in t["boxes"].int().tolist():
            assert 0 <= x1 < x2 <= CANVAS and 0 <= y1 < y2 <= CANVAS
            crop = img[0, y1:y2, x1:x2]
            assert crop.amax() > 0.5 and crop[0].amax() > 0 and crop[:, 0].amax() > 0  # tight on both sides
            inside[y1:y2, x1:x2] = True
        assert float(img[0][~inside].abs().max()) == 0.0  # nothing outside the boxes


def _train(detector, images, targets, steps, lr):
    torch.manual_seed(0)
    opt = torch.optim.SGD([p for p in detector.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    detector.train()
    losses = []
    for _ in range(steps):
        loss = sum(detector(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _check_detections(out, n):
    assert len(out) == n
    for d in out:
        assert set(d) == {"boxes", "labels", "scores"} and d["boxes"].shape[1] == 4 and len(d["boxes"]) > 0
        assert bool(((d["boxes"] >= 0) & (d["boxes"] <= CANVAS)).all())
        assert bool(((d["labels"] >= 1) & (d["labels"] <= 10)).all())


# few proposals and boxes per image: the 2-core machine trains a few steps in seconds. After that few steps the
# scores are still low (RetinaNet's prior starts them at 0.01), so evaluation keeps every box (threshold 0)
SMALL = {FasterRCNN: dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=200,
                          rpn_post_nms_top_n_test=100, box_batch_size_per_image=64, box_score_thresh=0.0,
                          box_detections_per_img=20),
         RetinaNet: dict(topk_candidates=100, score_thresh=0.0, detections_per_img=20)}


@pytest.mark.parametrize("detector_cls,extra,steps,lr", [(FasterRCNN, "pool", 6, 0.01), (RetinaNet, "p6p7", 8, 0.05)])
def test_detector_trains_on_a_fixed_batch_and_returns_boxes(batch, detector_cls, extra, steps, lr):
    torch.manual_seed(0)
    backbone = fpn_backbone("mobilenetv2_gc2l_n4", extra_blocks=extra, out_channels=64)  # small heads: 2 cores
    assert isinstance(backbone, FPNBackbone) and backbone.out_channels == 64
    assert sum(isinstance(m, TwoLevelGroupConv2d) for m in backbone.modules()) > 0
    assert [lv["reduction"] for lv in backbone.body.levels] == ([4, 8, 16, 32] if extra == "pool" else [8, 16, 32])
    detector = detector_cls(backbone, num_classes=11, min_size=CANVAS, max_size=CANVAS, **SMALL[detector_cls])
    images, targets = batch
    losses = _train(detector, images, targets, steps, lr)
    assert losses[-1] < 0.85 * losses[0], losses
    detector.eval()
    with torch.no_grad():
        maps = backbone(torch.stack(images))
        out = detector(images)
    assert list(maps) == (["0", "1", "2", "3", "pool"] if extra == "pool" else ["0", "1", "2", "p6", "p7"])
    _check_detections(out, len(images))


def test_fcos_and_mask_rcnn_take_the_backbone(batch):
    images, targets = batch
    fcos = FCOS(fpn_backbone("mobilenetv2_gc2l_n2", extra_blocks="p6p7"), num_classes=11, min_size=CANVAS,
                max_size=CANVAS)
    losses = fcos(images, targets)
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    sum(losses.values()).backward()
    mask_rcnn = MaskRCNN(fpn_backbone("mobilenetv2_gc2l_n2"), num_classes=11, min_size=CANVAS, max_size=CANVAS,
                         **SMALL[FasterRCNN])
    losses = mask_rcnn(images, targets)
    assert "loss_mask" in losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    out = mask_rcnn.eval()(images)
    assert out[0]["masks"].shape[1:] == (1, CANVAS, CANVAS)


@pytest.mark.parametrize("base", ["torchvision:resnet18", "resnet18"])
def test_a_converted_cnn_is_a_backbone_the_same_way(batch, base):
    """``create_grouped``'s model (no feature_info for torchvision's: its levels are found by running it) under
    FasterRCNN, its levels equal to the converted model's own intermediate outputs."""
    torch.manual_seed(0)
    model = create_grouped(base, conv_type="gc2l", groups=2, method="block_jacobi")
    backbone = fpn_backbone(model, norm_layer="frozen_bn", trainable_levels=2)
    levels = backbone.body.levels
    assert [lv["reduction"] for lv in levels] == [4, 8, 16, 32] and [lv["num_chs"] for lv in levels] == [64, 128,
                                                                                                         256, 512]
    assert [lv["module"] for lv in levels] == ["layer1", "layer2", "layer3", "layer4"]
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}  # the last 2 levels (the classifier is not in the body)
    seen = {}
    for name in ("layer1", "layer4"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    images, targets = batch
    x = torch.stack(images)
    with torch.no_grad():
        model.eval()(x)
        feats = backbone.body(x)
    assert torch.equal(feats[0], seen["layer1"]) and torch.equal(feats[-1], seen["layer4"])
    detector = FasterRCNN(backbone, num_classes=11, min_size=CANVAS, max_size=CANVAS, **SMALL[FasterRCNN])
    sum(detector(images, targets).values()).backward()
    _check_detections(detector.eval()(images), len(images))
