#!/usr/bin/env python3
"""Convert a dense (SC) tglc_zoo checkpoint into a GC or GC-2L checkpoint folder, without training.

    python scripts/convert.py runs/sc/published --conv-type gc2l --groups 4 --output runs/gc2l_n4
    python scripts/convert.py runs/sc/published --groups 8 --calibrate fmnist --calib-images 512 --output out/
    python scripts/convert.py runs/sc/published --conv-type gc --method block_jacobi --groups 4 --output out/

The source is anything ``tglc_zoo.from_pretrained`` accepts (folder, .safetensors file, URL, Hub repo
id, pretrained tag). The output is a checkpoint folder written by ``tglc_zoo.save_pretrained`` that
loads through every route (from_pretrained, torch.hub, timm ``local-dir:``). Per-layer relative errors
(the fit against block Jacobi, in the metric of the fit) are printed and, with --report, saved as JSON.
Objective and algorithm: docs/convert.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import tglc_zoo
from tglc_zoo.convert import METHODS, TARGET_TYPES, to_grouped
from tglc_zoo.convert.calibration import dataset_images
from tglc_zoo.data import DATASETS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="dense (SC) checkpoint: folder, .safetensors file, URL, HF repo id or tag")
    p.add_argument("--output", required=True, help="checkpoint folder to write")
    p.add_argument("--conv-type", default="gc2l", choices=TARGET_TYPES)
    p.add_argument("--groups", type=int, required=True, help="N, the number of groups")
    p.add_argument("--method", default="optimal", choices=METHODS)
    p.add_argument("--calibrate", choices=sorted(DATASETS), help="fit each layer to its real inputs on this "
                                                                 "dataset's training images (method optimal)")
    p.add_argument("--data-dir", help="dataset location (see tglc_zoo.data)")
    p.add_argument("--calib-images", type=int, default=256, help="number of calibration images")
    p.add_argument("--calib-seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=30, help="alternating least-squares sweeps (calibrated GC-2L)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--report", help="write the per-layer report to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.calibrate and args.method != "optimal":
        print(f"error: --calibrate needs --method optimal (got --method {args.method})", file=sys.stderr)
        return 2
    source = tglc_zoo.from_pretrained(args.source).eval()
    data = (dataset_images(args.calibrate, args.calib_images, data_dir=args.data_dir, seed=args.calib_seed)
            if args.calibrate else None)
    try:
        model = to_grouped(source, args.conv_type, args.groups, args.method, data, max_iter=args.max_iter)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    calib = f", calibrated on {args.calib_images} {args.calibrate} training images" if args.calibrate else ""
    description = (f"Converted without training from the dense checkpoint {args.source} by "
                   f"tglc_zoo.convert.to_grouped (conv_type={args.conv_type}, N={args.groups}, "
                   f"method={args.method}{calib}). Fine-tune before use; see docs/convert.md.")
    folder = tglc_zoo.save_pretrained(model, args.output, description=description)
    print(f"{'layer':32s} {'type':5s} {'shape':18s} {'rel.err':>8s} {'block-Jacobi':>12s}")
    for r in model.conversion_report:
        print(f"{r.name:32s} {r.conv_type:5s} {str(r.shape):18s} {r.relative_error:8.4f} "
              f"{r.relative_block_jacobi_error:12.4f}")
    if args.report:
        Path(args.report).write_text(json.dumps([r.to_dict() for r in model.conversion_report], indent=2) + "\n")
    print(f"wrote {folder} ({model.pretrained_cfg['architecture']}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
