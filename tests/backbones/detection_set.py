"""A small detection set from real Fashion-MNIST test images: a few items pasted at random places on a blank
canvas, each with its box and class — the format torchvision's detectors train on."""
import torch

from tglc_zoo.data import load_dataset

CANVAS = 128


def fmnist_canvases(n_images: int, items: int = 3, seed: int = 0, canvas: int = CANVAS
                    ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``n_images`` RGB canvases (3, canvas, canvas) in [0, 1] with ``items`` non-overlapping Fashion-MNIST items
    each, and their targets: ``boxes`` (x1, y1, x2, y2: the tight box of the item's non-zero pixels, in canvas
    pixels), ``labels`` (Fashion-MNIST class + 1; 0 is the detectors' background) and ``masks`` (each item's
    non-zero pixels, (items, canvas, canvas) uint8, for Mask R-CNN)."""
    ds = load_dataset("fmnist", train=False)
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(ds.targets), generator=g)[:n_images * items]
    images, targets = [], []
    for i in range(n_images):
        img = torch.zeros(canvas, canvas)
        boxes, labels, masks, taken = [], [], [], []
        for j in picks[i * items:(i + 1) * items].tolist():
            item = ds.images[j, 0].float() / 255
            for _ in range(1000):  # a free place (items never overlap, so every box holds exactly its item)
                y, x = (int(v) for v in torch.randint(0, canvas - 28 + 1, (2,), generator=g))
                if all(abs(y - ty) >= 28 or abs(x - tx) >= 28 for ty, tx in taken):
                    break
            else:
                raise ValueError(f"no free place for {items} items on a {canvas}×{canvas} canvas")
            taken.append((y, x))
            img[y:y + 28, x:x + 28] = item
            rows, cols = (item > 0).any(1).nonzero()[:, 0], (item > 0).any(0).nonzero()[:, 0]
            boxes.append([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1])
            labels.append(int(ds.targets[j]) + 1)
            mask = torch.zeros(canvas, canvas, dtype=torch.uint8)
            mask[y:y + 28, x:x + 28] = (item > 0).to(torch.uint8)
            masks.append(mask)
        images.append(img.expand(3, -1, -1).clone())
        targets.append(dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor(labels),
                            masks=torch.stack(masks)))
    return images, targets
