#!/usr/bin/env python3
"""Fine-tune any tglc_zoo checkpoint on a dataset and save a new checkpoint folder.

    python scripts/finetune.py <folder | model.safetensors | URL | org/name | name.tag> \\
        --dataset digits --output runs/ft-digits --epochs 3 [--freeze-body | --body-lr-scale 0.1]

The head is replaced for the dataset's classes (and the stem adapted to its channels); the new
folder's model card names the source as its base model and reports the measured test accuracy.
"""
from __future__ import annotations

import argparse
import sys

import torch

from tglc_zoo.data import DATASETS, build_datasets
from tglc_zoo.training.finetune import FinetuneConfig, finetune, save_finetuned


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="checkpoint: folder, .safetensors file, https:// or file:// URL, HF repo id, "
                                  "or a pretrained tag")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--data-dir", default=None, help="dataset root (see tglc_zoo.data)")
    p.add_argument("--output", required=True, help="folder to write the fine-tuned checkpoint to")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.05, help="head learning rate")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body-lr-scale", type=float, default=0.1, help="body lr = lr * this (default 0.1)")
    body.add_argument("--freeze-body", action="store_true", help="train only the new head")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--limit-train-batches", type=int, default=None, help="batches per epoch (quick runs)")
    p.add_argument("--no-augment", action="store_true", help="train without the dataset's augmentation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--revision", default=None, help="Hub revision of the source")
    p.add_argument("--push-to-hub", default=None, metavar="ORG/NAME", help="also upload the new folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    train_set, test_set, info = build_datasets(args.dataset, args.data_dir, augment=not args.no_augment)
    body_lr_scale = 0.0 if args.freeze_body else args.body_lr_scale
    config = FinetuneConfig(epochs=args.epochs, lr=args.lr, body_lr_scale=body_lr_scale,
                            batch_size=args.batch_size, weight_decay=args.weight_decay,
                            limit_train_batches=args.limit_train_batches, seed=args.seed)
    model, metrics = finetune(args.source, train_set, test_set, num_classes=info.num_classes, in_chans=info.in_chans,
                              label_names=info.label_names, input_size=info.input_size, mean=info.mean,
                              std=info.std, config=config, device=args.device, log=print, revision=args.revision)
    out = save_finetuned(model, args.output, base_model=args.source, metrics=metrics, dataset=info.name,
                         config=config)
    print(f"[finetune] saved {out} (test top1 {metrics['top1']:.2f}%)")
    if args.push_to_hub:
        import tglc_zoo

        print(f"[finetune] pushed: {tglc_zoo.push_to_hub(out, args.push_to_hub)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
