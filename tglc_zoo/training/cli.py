"""``tglc-train``: train any zoo model with the paper's recipes (thin layer over :func:`train`).

Every option is derived from a field of :class:`~tglc_zoo.training.TrainConfig` (its type, default,
choices and help), so the dataclass is the one list of settings.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..distributed.modes import PARALLEL_MODES
from ..errors import TglcZooError, TrainingInterrupted
from .config import TrainConfig
from .recipes import RECIPES
from .trainer import train

__all__ = ["build_parser", "config_from_args", "main"]

_GROUPS = {"what": "what to train", "recipe": "recipe (defaults from --recipe, itself defaulting to the dataset's)",
           "run": "run"}


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _finite(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if kind is float and not float("-inf") < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _base_type(annotation: Any) -> Any:
    """``int`` for ``int | None``, etc."""
    hint = annotation
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _add_field(group: argparse._ArgumentGroup, f: dataclasses.Field, hint: Any) -> None:
    meta, name = f.metadata, f.name
    flag = meta["flag"] or "--" + name.replace("_", "-")
    kind = _base_type(hint)
    kw: dict[str, Any] = dict(dest=name, help=meta["help"])
    if meta["choices"]:
        kw["choices"] = list(meta["choices"])
    if name == "resume":
        kw.update(nargs="?", const="", metavar="RUN_DIR_OR_CHECKPOINT")
    elif kind is bool and f.default is None:
        kw.update(action=argparse.BooleanOptionalAction, default=None)
    elif kind is bool:
        kw.update(action="store_false" if f.default else "store_true")
    elif typing.get_origin(kind) is list:
        kw.update(type=_int_list)
    elif typing.get_origin(kind) is dict:
        kw.update(type=_json_dict, default={})
    else:
        kw.update(type=_finite(kind))
    if f.default is not dataclasses.MISSING and "default" not in kw and "action" not in kw:
        kw["default"] = f.default if f.default != "" else None
    group.add_argument(flag, **kw)


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
    groups = {key: p.add_argument_group(title) for key, title in _GROUPS.items()}
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        _add_field(groups[f.metadata["group"]], f, hints[f.name])
    for action in p._actions:  # the recipe names are only known once the recipes are imported
        if action.dest == "recipe":
            action.choices = sorted(RECIPES)
        if action.dest == "parallel":
            action.help = f"multi-process mode: {sorted(PARALLEL_MODES)}"
    groups["run"].add_argument("--group-parallel", dest="parallel", action="store_const", const="group",
                               help="same as --parallel group: process k holds group k of every layer")
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    resume = values["resume"]
    if resume == "auto" and not args.output:
        parser.error("--resume auto needs --output: the run folder to continue, or to start when it holds no run")
    if resume == "":
        if not args.output:
            parser.error("bare --resume needs --output (or pass the run folder: --resume RUN_DIR)")
        resume = args.output
    if resume in (None, "auto") and (not args.model or not args.dataset) and not (
            resume == "auto" and Path(args.output, "checkpoints").is_dir()):
        parser.error("--model and --dataset are required (unless you --resume a run)")
    if args.parallel not in PARALLEL_MODES:
        parser.error(f"--parallel {args.parallel!r}: valid choices: {sorted(PARALLEL_MODES)}")
    output = args.output
    if not output and resume and resume != "auto":
        rp = Path(resume)
        output = str(rp if rp.is_dir() else rp.parent.parent if rp.parent.name == "checkpoints" else rp.parent)
    values.update(model=args.model or "", dataset=args.dataset or "", resume=resume,
                  output=output or f"runs/{args.model}-{args.dataset}")
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args, parser)
        result = train(cfg)
    except TrainingInterrupted as exc:
        if os.environ.get("RANK", "0") == "0":
            print(f"tglc-train: {exc}", file=sys.stderr, flush=True)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tglc-train: interrupted (a second Ctrl-C): stopped without saving; the latest checkpoint in "
              f"{args.output or 'the run folder'}/checkpoints is intact (tglc-train --resume <run folder>)",
              file=sys.stderr)
        return 130
    except (TglcZooError, ValueError, FloatingPointError, OSError) as exc:
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
