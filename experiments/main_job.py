#!/usr/bin/env python3
"""The main job: train a small GC-2L WideResNet on Fashion-MNIST on the CPU, publish it, reload it
through ``torch.hub.load(..., source="local")`` and ``tglc_zoo.from_pretrained``, and print its
test accuracy next to SC and GC trained the same way.

Defaults (fit in 15 minutes on 2 CPU cores: the whole job measured 10 min 08 s; see README "Training"):
wrn16_4_gc2l_n4, then wrn16_4 (SC) and wrn16_4_gc_n4 (GC) for comparison (``--no-compare`` skips
them), each on a fixed 8,000-image subset of the Fashion-MNIST training set for 2 epochs (batch 128, SGD momentum 0.9,
weight decay 5e-4, lr 0.1 then 0.01 for the second epoch), evaluated on all 10,000 test images.
If Fashion-MNIST is not installed, scikit-learn's digits are used instead (and the job says so).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from tglc_zoo.data import DataNotFoundError, build_datasets
from tglc_zoo.training import TrainConfig, train
from tglc_zoo.training.metrics import plot_runs
from tglc_zoo.util.atomic import atomic_write_json

REPO = Path(__file__).resolve().parent.parent


def _evaluate(model: torch.nn.Module, dataset, batch_size: int = 500) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            seen += len(y)
    return correct / seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wrn16_4_gc2l_n4")
    p.add_argument("--compare", nargs="+", default=["wrn16_4", "wrn16_4_gc_n4"], metavar="MODEL",
                   help="also train these models the same way (default: wrn16_4 = SC, wrn16_4_gc_n4 = GC)")
    p.add_argument("--no-compare", dest="compare", action="store_const", const=[], help="train only --model")
    p.add_argument("--dataset", default="fmnist", choices=["fmnist", "digits"])
    p.add_argument("--data-dir", help="Fashion-MNIST folder (default: the Debian package's)")
    p.add_argument("--train-subset", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr-milestones", default="1", help="comma-separated epochs where lr is multiplied by 0.1")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--output", default="runs/main_job", help="folder for runs, published models and the summary")
    p.add_argument("--progress", action="store_true", help="show tqdm bars")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    out = Path(args.output)
    dataset = args.dataset
    if dataset == "fmnist":
        try:
            build_datasets("fmnist", args.data_dir)
        except DataNotFoundError as exc:
            print(f"[main] Fashion-MNIST is not installed ({str(exc).splitlines()[0]}); FALLING BACK to "
                  "scikit-learn digits", flush=True)
            dataset = "digits"
    models = [args.model] + [m for m in args.compare if m != args.model]
    milestones = [int(v) for v in args.lr_milestones.split(",") if v.strip()]
    _, test_ds, info = build_datasets(dataset, args.data_dir if dataset == "fmnist" else None)
    print(f"[main] {dataset}: training {', '.join(models)} on {args.train_subset} train images for {args.epochs} "
          f"epochs, {torch.get_num_threads()} torch threads", flush=True)

    import tglc_zoo

    rows, histories = [], {}
    for name in models:
        run_dir, pub_dir = out / "runs" / name, out / "published" / name
        cfg = TrainConfig(model=name, dataset=dataset, data_dir=args.data_dir if dataset == "fmnist" else None,
                          output=str(run_dir), epochs=args.epochs, batch_size=args.batch_size,
                          lr_milestones=milestones, train_subset=args.train_subset, seed=args.seed,
                          publish=str(pub_dir), progress=args.progress, tensorboard=False)
        if (run_dir / "checkpoints" / "last.pt").exists():
            cfg.resume = str(run_dir)  # a re-run continues (or just re-publishes) instead of failing
        result = train(cfg)
        histories[name] = result.history
        trained_acc = result.final["test_acc"]
        # reload the published folder two ways and measure again on the full test set
        hub_model = torch.hub.load(str(REPO), name, source="local", pretrained=str(pub_dir), trust_repo=True)
        hub_acc = _evaluate(hub_model, test_ds)
        fp_model = tglc_zoo.from_pretrained(str(pub_dir)).eval()
        check = torch.stack([test_ds[i][0] for i in range(min(1000, len(test_ds)))])
        with torch.no_grad():
            same = torch.equal(fp_model(check), hub_model(check))
        fp_acc = hub_acc if same else _evaluate(fp_model, test_ds)
        n_params = sum(p.numel() for p in fp_model.parameters())
        args_ = getattr(fp_model, "model_args", {})
        rows.append({"model": name, "conv_type": args_.get("conv_type", "sc"), "groups": args_.get("groups", 1),
                     "params": n_params, "test_acc_trained": trained_acc, "test_acc_torch_hub": hub_acc,
                     "test_acc_from_pretrained": fp_acc, "train_wall_s": result.wall_time_s,
                     "published": str(pub_dir)})
        print(f"[main] {name}: test acc {trained_acc:.4f} after training; reloaded: torch.hub.load {hub_acc:.4f}, "
              f"from_pretrained {fp_acc:.4f} "
              f"({'bit-identical logits to torch.hub.load' if same else 'evaluated separately'})",
              flush=True)
        if abs(hub_acc - trained_acc) > 1e-9 or abs(fp_acc - trained_acc) > 1e-9:
            print(f"[main] ERROR: the reloaded {name} does not reproduce the trained accuracy", file=sys.stderr)
            return 1
    plot_runs(histories, out / "curves.png", title=f"{dataset}: training loss and test error")
    total = time.perf_counter() - t_start
    summary = {"dataset": dataset, "train_subset": args.train_subset, "epochs": args.epochs,
               "test_samples": len(test_ds), "total_wall_s": total, "results": rows}
    atomic_write_json(out / "summary.json", summary)
    print(f"\n{dataset} test accuracy ({len(test_ds)} images), {args.epochs} epochs on {args.train_subset} images:")
    print(f"{'model':<20}{'conv':<6}{'N':>3}{'params':>11}{'test acc':>10}{'error %':>9}{'train s':>9}")
    for r in rows:
        print(f"{r['model']:<20}{r['conv_type']:<6}{r['groups']:>3}{r['params']:>11,}"
              f"{100 * r['test_acc_from_pretrained']:>9.2f}%{100 * (1 - r['test_acc_from_pretrained']):>9.2f}"
              f"{r['train_wall_s']:>9.0f}")
    print(f"[main] total wall time {total:.0f}s; summary {out / 'summary.json'}, curves {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
