"""``tglc-train``: train any zoo model with the paper's recipes (thin layer over :func:`train`)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from ..data import DATASETS, DataNotFoundError
from .checkpoint import CheckpointError
from .config import AMP_CHOICES, TrainConfig
from .recipes import RECIPES
from .schedule import SCHEDULES
from .trainer import PARALLEL_MODES, ModelDatasetMismatchError, RunExistsError, train

__all__ = ["build_parser", "config_from_args", "main"]


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tglc-train",
        description="Train a tglc_zoo model with the paper's recipes; resume exactly; publish safetensors.",
        epilog="Examples:\n"
               "  tglc-train --model wrn16_4_gc2l_n4 --dataset fmnist --output runs/fm\n"
               "  tglc-train --model wrn28_10_gc2l_n4 --dataset cifar10 --data-dir ~/data --recipe cifar "
               "--amp bf16 --channels-last --output runs/c10\n"
               "  tglc-train --resume runs/fm --publish published/fm\n"
               "  torchrun --nproc-per-node 4 -m tglc_zoo.training.cli --model ... --dataset ...",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to train")
    g.add_argument("--model", help="registered model name (see tglc_zoo.list_models()); required unless --resume")
    g.add_argument("--conv-type", help="override the model's conv type (sc, gc, gc2l, shuffle, flgc)")
    g.add_argument("--groups", type=int, help="override the number of groups N")
    g.add_argument("--drop-rate", type=float, help="dropout before the classifier")
    g.add_argument("--model-kwargs", type=_json_dict, default={}, help="extra create_model kwargs as JSON")
    g.add_argument("--pretrained", action="store_true", help="start from the model's pretrained weights")
    g.add_argument("--dataset", choices=sorted(DATASETS), help="required unless --resume")
    g.add_argument("--data-dir", help="dataset location (cifar/imagenet: required; fmnist: default "
                                      "$TGLC_FMNIST_DIR, then /usr/share/datasets/fashion-mnist)")
    g.add_argument("--download", action="store_true", help="download CIFAR with torchvision (needs a network)")
    g.add_argument("--train-subset", type=int, help="train on a fixed random subset of this many images")
    g.add_argument("--no-augment", dest="augment", action="store_false", help="turn training augmentation off")
    g.add_argument("--image-size", type=int, help="imagenet crop size (default 224)")
    r = p.add_argument_group("recipe (defaults from --recipe, itself defaulting to the dataset's)")
    r.add_argument("--recipe", choices=sorted(RECIPES))
    r.add_argument("--epochs", type=int)
    r.add_argument("--batch-size", type=int, help="global batch size (all processes together)")
    r.add_argument("--lr", type=float)
    r.add_argument("--momentum", type=float)
    r.add_argument("--weight-decay", type=float)
    r.add_argument("--lr-milestones", type=_int_list, help="epochs at which lr is multiplied by --lr-gamma, e.g. 60,120,160")
    r.add_argument("--lr-gamma", type=float)
    r.add_argument("--schedule", choices=SCHEDULES, help="step (x lr-gamma at milestones) or cosine (to 0)")
    r.add_argument("--warmup-epochs", type=float, help="linear warm-up over this many epochs")
    r.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--grad-accum", type=int, default=1, help="split each per-process batch into this many micro-batches")
    o = p.add_argument_group("run")
    o.add_argument("--output", help="run folder (default runs/<model>-<dataset>)")
    o.add_argument("--resume", nargs="?", const="", metavar="RUN_DIR_OR_CHECKPOINT",
                   help="continue a run (its folder or a checkpoint file); bare --resume means --output")
    o.add_argument("--publish", metavar="DIR", help="publish the final checkpoint to DIR at the end")
    o.add_argument("--publish-which", choices=["last", "best"], default="last")
    o.add_argument("--push-to-hub", metavar="ORG/NAME", help="also upload the published folder (needs a network)")
    o.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    o.add_argument("--amp", choices=AMP_CHOICES, help="mixed precision dtype")
    o.add_argument("--channels-last", action="store_true")
    o.add_argument("--compile", action="store_true", help="torch.compile the model")
    o.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    o.add_argument("--limit-train-batches", type=int, help="at most this many training steps per epoch")
    o.add_argument("--limit-val-batches", type=int, help="evaluate on at most this many batches")
    o.add_argument("--parallel", default="data",
                   help=f"multi-process mode: {sorted(PARALLEL_MODES)} (more are registered by tglc_zoo.distributed)")
    o.add_argument("--group-parallel", dest="parallel", action="store_const", const="group",
                   help="same as --parallel group: process k holds group k of every layer (tglc_zoo.distributed)")
    o.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    o.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    resume = args.resume
    if resume == "":
        if not args.output:
            parser.error("bare --resume needs --output (or pass the run folder: --resume RUN_DIR)")
        resume = args.output
    if resume is None and (not args.model or not args.dataset):
        parser.error("--model and --dataset are required (unless you --resume a run)")
    if args.parallel not in PARALLEL_MODES:
        with contextlib.suppress(ImportError):
            import tglc_zoo.distributed  # noqa: F401  (may register more parallel modes)
    if args.parallel not in PARALLEL_MODES:
        parser.error(f"--parallel {args.parallel!r}: valid choices: {sorted(PARALLEL_MODES)}")
    output = args.output
    if not output and resume:
        rp = Path(resume)
        output = str(rp if rp.is_dir() else rp.parent.parent if rp.parent.name == "checkpoints" else rp.parent)
    output = output or f"runs/{args.model}-{args.dataset}"
    return TrainConfig(
        model=args.model or "", dataset=args.dataset or "", output=output, data_dir=args.data_dir,
        download=args.download, recipe=args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, lr_milestones=args.lr_milestones,
        lr_gamma=args.lr_gamma, nesterov=args.nesterov, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, conv_type=args.conv_type, groups=args.groups, drop_rate=args.drop_rate,
        model_kwargs=args.model_kwargs, pretrained=args.pretrained, resume=resume, publish=args.publish,
        publish_which=args.publish_which, push_to_hub=args.push_to_hub, seed=args.seed, device=args.device,
        amp=args.amp, channels_last=args.channels_last, compile=args.compile, workers=args.workers,
        grad_accum=args.grad_accum, augment=args.augment, image_size=args.image_size, train_subset=args.train_subset,
        limit_train_batches=args.limit_train_batches, limit_val_batches=args.limit_val_batches,
        parallel=args.parallel, progress=args.progress, tensorboard=args.tensorboard)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args, parser)
        result = train(cfg)
    except (DataNotFoundError, CheckpointError, ModelDatasetMismatchError, RunExistsError, ValueError) as exc:
        print(f"tglc-train: error: {exc}", file=sys.stderr)
        return 2
    final = result.final
    if final and os.environ.get("RANK", "0") == "0":
        print(f"[train] done: test acc {final['test_acc']:.4f} (best {result.best_acc:.4f} at epoch "
              f"{result.best_epoch}), {result.wall_time_s:.1f}s, run dir {result.run_dir}"
              + (f", published to {result.published}" if result.published else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
