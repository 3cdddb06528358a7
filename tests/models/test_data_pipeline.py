"""timm's data pipeline on our configs: ``resolve_data_config({}, model=m)`` and ``create_transform(...)``
give each config's input size, normalisation and crop — the 1-channel ``.fmnist`` tags included — and,
on real Fashion-MNIST test images, the very tensors and predictions of the shipped checkpoints."""
import math

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
from torchvision.transforms import functional as TF

import tglc_zoo
from tglc_zoo.archs import ARCHS, VARIANTS

TAGGED = tglc_zoo.list_models(pretrained=True)
_FMNIST = [t for t in TAGGED if tuple(timm.models.get_pretrained_cfg(t).input_size) == (1, 28, 28)]
# one shipped Fashion-MNIST checkpoint per conv type (whichever N ships first)
FMNIST = list({VARIANTS[t.split(".")[0]].conv_type: t for t in reversed(_FMNIST)}.values())


@pytest.mark.parametrize("name", [*ARCHS, *TAGGED])
def test_data_config_and_eval_transform_follow_the_config(name):
    with torch.device("meta"):  # only the config matters: no need to allocate WRN-28-80
        model = timm.create_model(name)
    cfg = model.pretrained_cfg
    data = resolve_data_config({}, model=model)
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct"):
        assert tuple(np.atleast_1d(data[key])) == tuple(np.atleast_1d(cfg[key])), key
    channels, height, width = cfg["input_size"]
    assert len(data["mean"]) == len(data["std"]) == channels
    transform = create_transform(**data)  # evaluation: resize to size / crop_pct, centre crop, normalise
    scale = math.floor(height / data["crop_pct"])
    value = 200
    image = Image.new("L" if channels == 1 else "RGB", (scale + 5, scale + 9), value if channels == 1 else (value,) * 3)
    x = transform(image)
    assert tuple(x.shape) == (channels, height, width)
    want = torch.tensor([(value / 255 - m) / s for m, s in zip(data["mean"], data["std"])])
    torch.testing.assert_close(x.mean(dim=(1, 2)), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(x.std(dim=(1, 2)), torch.zeros(channels), rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def fmnist_images():
    from tglc_zoo.data import load_dataset

    ds = load_dataset("fmnist", train=False)
    return ds.images[:1000], ds.targets[:1000]


@pytest.mark.parametrize("tag", FMNIST)
def test_shipped_fmnist_checkpoint_through_timms_pipeline(tag, fmnist_images):
    """Real test images as PIL images through timm's transform for the checkpoint's config give exactly the
    tensors of the independent ToTensor + Normalize(config mean/std), hence the same predictions, and the
    checkpoint's accuracy on them is its manifest top-1 within sampling noise (1,000 images)."""
    images, targets = fmnist_images
    model = tglc_zoo.create_model(tag, pretrained=True).eval()
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (1, 28, 28) and len(cfg["mean"]) == 1
    transform = create_transform(**resolve_data_config({}, model=model))
    x_timm = torch.stack([transform(TF.to_pil_image(img)) for img in images])
    x_ref = torch.stack([TF.normalize(TF.to_tensor(img.squeeze(0).numpy()), cfg["mean"], cfg["std"])
                         for img in images])
    torch.testing.assert_close(x_timm, x_ref, rtol=0, atol=1e-6)
    with torch.no_grad():
        pred = torch.cat([model(x_timm[i:i + 250]).argmax(1) for i in range(0, len(x_timm), 250)])
    top1 = 100.0 * float((pred == targets).float().mean())
    claimed = tglc_zoo.pretrained_metrics(tag)["top1"]
    assert abs(top1 - claimed) <= 3.0, f"{tag}: {top1:.1f}% on 1,000 test images, manifest says {claimed:.2f}%"
