"""The 1-channel Fashion-MNIST tags with timm's own data tools, as the README's "Pretrained weights" says: test
images written as PNG files in an ImageFolder layout, read by ``timm.data.create_dataset(...,
input_img_mode="L")`` and ``create_loader``, reproduce the manifest's top-1 on the whole test set. Read as RGB
(timm's default), the model says what it expects and both fixes instead of a convolution's shape error."""
import pytest
import torch
from PIL import Image
from timm.data import create_dataset, create_loader, resolve_data_config

import tglc_zoo
from tglc_zoo.data import load_dataset

TAG = "wrn16_2_gc2l_n16.fmnist"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """All 10,000 Fashion-MNIST test images as grayscale PNGs under ``<root>/<class index>/``."""
    root = tmp_path_factory.mktemp("fmnist_png")
    ds = load_dataset("fmnist", train=False)
    for c in range(10):
        (root / str(c)).mkdir()
    for i, (img, label) in enumerate(zip(ds.images, ds.targets.tolist())):
        Image.fromarray(img[0].numpy(), mode="L").save(root / str(label) / f"{i:05d}.png")
    return root


def _top1(model, loader):
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return 100.0 * correct / total, total


@pytest.mark.slow  # the whole test set (about a minute on 2 cores)
def test_timms_loader_reproduces_the_manifest_top1(image_folder):
    model = tglc_zoo.create_model(TAG, pretrained=True).eval()
    data_cfg = resolve_data_config({}, model=model)
    dataset = create_dataset("", root=str(image_folder), input_img_mode="L")
    loader = create_loader(dataset, batch_size=500, use_prefetcher=False, num_workers=0, **data_cfg)
    top1, total = _top1(model, loader)
    assert total == 10_000
    assert round(top1, 2) == tglc_zoo.pretrained_metrics(TAG)["top1"]


def test_rgb_images_get_the_expected_channels_and_both_fixes(image_folder):
    model = tglc_zoo.create_model(TAG, pretrained=True).eval()
    data_cfg = resolve_data_config({}, model=model)
    rgb = create_dataset("", root=str(image_folder))  # timm's default: input_img_mode="RGB"
    x, _ = next(iter(create_loader(rgb, batch_size=8, use_prefetcher=False, num_workers=0, **data_cfg)))
    assert x.shape[1] == 3  # the 1-channel Normalize broadcast over the 3 channels
    with pytest.raises(ValueError, match=r"this model takes 1-channel images \(its stem 'stem.conv' has "
                                         r"in_channels=1\), got a batch with 3 channels; .*input_img_mode='L'.*"
                                         r"in_chans=3"):
        model(x)
    # the second fix: an RGB model from the same weights computes the same on grey images read as RGB
    rgb_model = tglc_zoo.create_model(TAG, pretrained=True, in_chans=3).eval()
    grey, _ = next(iter(create_loader(create_dataset("", root=str(image_folder), input_img_mode="L"), batch_size=8,
                                      use_prefetcher=False, num_workers=0, **data_cfg)))
    with torch.no_grad():
        torch.testing.assert_close(rgb_model(x), model(grey), rtol=1e-4, atol=1e-4)
