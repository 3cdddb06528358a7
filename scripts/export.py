#!/usr/bin/env python3
"""Export a tglc_zoo model to ONNX, checked in onnxruntime against eager, with its input config as JSON.

    python scripts/export.py wrn16_2_gc2l_n16.fmnist --output exports/wrn16_2_gc2l_n16
    python scripts/export.py ckpt/ --output exports/mine --torch-export --torchscript
    python scripts/export.py wrn16_4_gc2l_n4 --random-init --output exports/untrained

The source is anything ``tglc_zoo.from_pretrained`` accepts (a pretrained tag, a checkpoint folder or
file, a URL, a Hugging Face repo id), or with ``--random-init`` a model name. The folder gets
``model.onnx`` (dynamic batch; FLGC deployed and each GC-2L layer's implementation fixed for the input
size first) and ``input_config.json`` (timm's data config: input size, interpolation, mean, std, crop;
labels), and with the flags ``model.pt2`` (torch.export) and ``model.torchscript.pt``.
Needs ``pip install onnx onnxruntime onnxscript``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import tglc_zoo
from tglc_zoo.errors import TglcZooError
from tglc_zoo.export import example_input, export_folder, export_program, export_torchscript
from tglc_zoo.util.atomic import atomic_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="pretrained tag, checkpoint folder/file, URL or HF repo id (a name with "
                                  "--random-init)")
    p.add_argument("--output", required=True, help="folder to write model.onnx and input_config.json into")
    p.add_argument("--random-init", action="store_true", help="export an untrained create_model(source)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest accepted |onnxruntime - eager|")
    p.add_argument("--torch-export", action="store_true", help="also write model.pt2 (torch.export)")
    p.add_argument("--torchscript", action="store_true", help="also write model.torchscript.pt")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output)
    try:
        model = tglc_zoo.create_model(args.source) if args.random_init else tglc_zoo.from_pretrained(args.source)
        folder, check = export_folder(model, out, opset=args.opset, atol=args.atol)
        print(f"{folder / 'model.onnx'}: opset {check.opset}, onnxruntime vs eager max |diff| "
              f"{check.max_abs_diff:.2e} (atol {args.atol:g}) on batches {list(check.batch_sizes)}")
        example = example_input(model)
        if args.torch_export:
            with atomic_path(out / "model.pt2") as tmp:
                torch.export.save(export_program(model, example), tmp)
            print(f"{out / 'model.pt2'}: torch.export program (dynamic batch)")
        if args.torchscript:
            with atomic_path(out / "model.torchscript.pt") as tmp:
                torch.jit.save(export_torchscript(model, example), str(tmp))
            print(f"{out / 'model.torchscript.pt'}: TorchScript")
    except TglcZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{out / 'input_config.json'}: input config")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
