"""The training loop: any zoo model on any supported dataset, with exact resume.

``train(config)`` builds data and model, trains for the recipe's epochs (evaluating after each), and
leaves in ``config.output``::

    config.json                 the resolved run configuration
    metrics.jsonl, metrics.csv  one row per epoch
    curves.png                  training loss and test error per epoch (Figure 4 style)
    checkpoints/last.pt         resumable state after the latest epoch (atomic)
    checkpoints/best.pt         the same for the epoch with the best test accuracy
    tensorboard/                when the tensorboard package is installed

Multi-process runs go through a :class:`~tglc_zoo.distributed.ParallelMode` (``config.parallel``):
it wraps the model, and produces and loads the single-process training state for checkpoints.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import DatasetInfo, build_datasets
from ..distributed.context import DistContext, all_reduce_sum, setup_distributed, teardown_distributed
from ..distributed.modes import ParallelMode, get_parallel_mode
from ..errors import CheckpointError, ModelDatasetMismatchError, RunExistsError
from ..util.atomic import atomic_write_json, clear_stale_temporaries
from ..util.hardware import hardware_description
from .build import build_model_for
from .checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_torch_save,
    capture_rng_state,
    load_checkpoint,
    plain_scheduler_state,
    resolve_resume_path,
    restore_rng_state,
    restore_scheduler_state,
)
from .config import TrainConfig, runtime_fields
from .loop import evaluate, train_step
from .metrics import TensorBoardLogger, plot_history, write_metrics
from .publish import publish_run
from .recipes import Recipe
from .sampler import GlobalBatchSampler, ShardSampler
from .schedule import build_scheduler

__all__ = ["RunResult", "train", "RUN_FILES"]

# what a run folder holds: a folder with anything else is not a run and is never written into
RUN_FILES = frozenset({"config.json", "metrics.jsonl", "metrics.csv", "curves.png", "checkpoints", "tensorboard"})


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    best_acc: float
    best_epoch: int
    wall_time_s: float
    published: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def _check_forward(model: nn.Module, sample: torch.Tensor, model_name: str, info: DatasetInfo) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except RuntimeError as exc:
        raise ModelDatasetMismatchError(f"model {model_name!r} cannot take dataset {info.name!r}'s inputs of "
                                        f"shape {tuple(sample.shape[1:])}: {str(exc)[:300]}") from exc
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] != info.num_classes:
        raise ModelDatasetMismatchError(f"model {model_name!r} returns {tuple(out.shape)} logits but dataset "
                                        f"{info.name!r} has {info.num_classes} classes")


def _subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].sort().values.tolist()  # type: ignore[arg-type]
    return Subset(ds, idx)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_output_folder(run_dir: Path, resuming: bool) -> None:
    """A new run writes only into a missing or empty folder, or one that holds an unfinished run's own files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunExistsError(f"--output {run_dir} is a file, not a folder; choose a folder for the run")
    if resuming or not run_dir.is_dir():
        return
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise RunExistsError(f"{run_dir} already holds a run (checkpoints/last.pt); pass "
                             f"--resume {run_dir} to continue it or choose another --output")
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES)
    record = run_dir / "config.json"
    if not foreign and record.is_file():
        try:
            ok = {"config", "recipe"} <= set(json.loads(record.read_text()))
        except (ValueError, TypeError, UnicodeDecodeError):
            ok = False
        if not ok:
            foreign = ["config.json (not a tglc-train run record)"]
    if foreign:
        raise RunExistsError(f"--output {run_dir} holds files that are not a tglc-train run: {foreign[:10]}; "
                             "a run never writes into a folder of other files: choose a new or empty folder")


def merge_resume_config(cfg: TrainConfig, saved: dict[str, Any], path: Path) -> TrainConfig:
    """The resumed run's config: the saved one, with the runtime settings ``cfg`` changes.

    A setting that decides what the run computes (model, data, recipe, seed, precision, ...) may not
    change: asking for another value is an error that lists each difference. ``epochs`` may grow
    (train longer) under the ``step`` schedule, whose learning rates do not depend on it.
    """
    new, merged = cfg.to_dict(), dict(saved)
    runtime = set(runtime_fields())
    defaults = TrainConfig(model=saved["model"], dataset=saved["dataset"], output="x").to_dict()
    changed = []
    for key, value in new.items():
        if key in runtime or key == "epochs" or value in (None, "") or value == saved.get(key):
            continue
        if value == defaults.get(key) and key not in ("model", "dataset"):
            continue  # an option left at its default is not a request
        changed.append(f"{key}: {saved.get(key)!r} -> {value!r}")
    if changed:
        raise ModelDatasetMismatchError(f"--resume {path}: the run was started with other settings "
                                        f"({'; '.join(changed)}); "
                                        "a resumed run keeps its settings: drop these options, or start a new run "
                                        "with a new --output")
    for key in runtime:
        if new[key] not in (None, ""):
            merged[key] = new[key]
    if new["epochs"] is not None and new["epochs"] != saved.get("epochs"):
        recipe = TrainConfig.from_dict(saved).resolved_recipe()
        if recipe.schedule != "step" or new["epochs"] < recipe.epochs:
            raise ModelDatasetMismatchError(
                f"--resume {path}: --epochs {new['epochs']} differs from the run's {recipe.epochs}; only a run on the "
                f"step schedule may be extended (the {recipe.schedule!r} schedule's learning rates depend on the "
                "number of epochs), and never shortened")
        merged["epochs"] = new["epochs"]
    if not cfg.output:
        merged["output"] = str(path.parent.parent) if path.parent.name == "checkpoints" else saved["output"]
    merged["resume"] = cfg.resume
    return TrainConfig.from_dict(merged)


class _Run:
    """State of one training run (one process)."""

    history: list[dict[str, Any]]

    def __init__(self, cfg: TrainConfig, ctx: DistContext, log: Callable[[str], None]) -> None:
        self.cfg, self.ctx, self.log = cfg, ctx, log
        self.ckpt: dict[str, Any] | None = None
        self._rng_to_restore: dict[str, Any] | None = None
        if cfg.resume:
            path = resolve_resume_path(cfg.resume)
            self.ckpt = load_checkpoint(path)
            self.cfg = cfg = merge_resume_config(cfg, self.ckpt["config"], path)
        self.run_dir = Path(cfg.output)
        check_output_folder(self.run_dir, resuming=self.ckpt is not None)
        self.recipe: Recipe = cfg.resolved_recipe()
        self.mode: ParallelMode = get_parallel_mode(cfg.parallel)

    # ------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg, ctx, r = self.cfg, self.ctx, self.recipe
        _seed_everything(cfg.seed)
        if ctx.is_main and cfg.download:
            build_datasets(cfg.dataset, cfg.data_dir, download=True)
        if ctx.distributed:
            torch.distributed.barrier()
        train_ds, test_ds, self.info = build_datasets(cfg.dataset, cfg.data_dir, augment=cfg.augment,
                                                      image_size=cfg.image_size)
        self.train_ds = _subset(train_ds, cfg.train_subset, cfg.seed)
        self.test_ds = test_ds
        self.model = build_model_for(cfg.model, self.info, cfg.model_overrides(), cfg.pretrained)
        _check_forward(self.model, torch.stack([test_ds[i][0] for i in range(min(2, len(cast(Sized, test_ds))))]),
                       cfg.model, self.info)
        if ctx.rank > 0:  # same weights everywhere (DDP also broadcasts), different augmentation draws
            _seed_everything(cfg.seed + ctx.rank)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        # Module.to takes a device and a memory_format together; torch's overloads list them apart
        self.model.to(ctx.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=r.lr, momentum=r.momentum,
                                         weight_decay=r.weight_decay, nesterov=r.nesterov)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[cfg.amp]
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=cfg.amp == "fp16")
        self.start_epoch, self.history = 0, []
        self.best_acc, self.best_epoch = -1.0, -1
        self.shard = shard = self.mode.shard_data and ctx.distributed
        rank, world = (ctx.rank, ctx.world_size) if shard else (0, 1)
        self.local_batch = r.batch_size // world
        if r.batch_size % (world * cfg.grad_accum):
            raise ValueError(f"batch size {r.batch_size} must be divisible by world size x grad_accum = "
                             f"{world} x {cfg.grad_accum}")
        self.batch_sampler = GlobalBatchSampler(len(cast(Sized, self.train_ds)), r.batch_size, seed=cfg.seed, rank=rank,
                                                world_size=world)
        self.steps_per_epoch = len(self.batch_sampler)
        if cfg.limit_train_batches is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.limit_train_batches)
        self.scheduler = build_scheduler(self.optimizer, steps_per_epoch=self.steps_per_epoch, epochs=r.epochs,
                                         schedule=r.schedule, warmup_epochs=r.warmup_epochs,
                                         lr_milestones=r.lr_milestones, lr_gamma=r.lr_gamma)
        self.net = self.mode.wrap(self.model, ctx)
        if self.ckpt is not None:
            self._load_state(self.ckpt)
        if cfg.compile:
            self.net = cast(nn.Module, torch.compile(self.net))  # an OptimizedModule; the stubs say Callable
        pin = ctx.device.type == "cuda"
        self.train_loader = DataLoader(self.train_ds, batch_sampler=self.batch_sampler, num_workers=cfg.workers,
                                       pin_memory=pin)
        self.test_loader = DataLoader(self.test_ds, batch_size=max(self.local_batch, 1), num_workers=cfg.workers,
                                      sampler=ShardSampler(len(cast(Sized, self.test_ds)), rank=rank,
                                                           world_size=world),
                                      pin_memory=pin)
        self.tb = TensorBoardLogger(self.run_dir, enabled=cfg.tensorboard and ctx.is_main)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            clear_stale_temporaries(self.run_dir / "checkpoints")  # left by a process killed mid-save
            atomic_write_json(self.run_dir / "config.json", self._run_record())

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        try:
            self.mode.load_training_state(self.net, self.model, self.optimizer, ckpt["model"], ckpt["optimizer"])
            restore_scheduler_state(self.scheduler, ckpt["scheduler"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"the checkpoint does not fit model {self.cfg.model!r}: {str(exc)[:300]}") from exc
        self.start_epoch = int(ckpt["epoch"])
        self.history = [dict(row) for row in ckpt["history"]]
        self.best_acc, self.best_epoch = float(ckpt["best_acc"]), int(ckpt["best_epoch"])
        self._rng_to_restore = ckpt["rng"]

    def _run_record(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "recipe": self.recipe.to_dict(), "dataset": {
            "name": self.info.name, "num_classes": self.info.num_classes, "in_chans": self.info.in_chans,
            "input_size": list(self.info.input_size), "mean": list(self.info.mean), "std": list(self.info.std),
            "label_names": list(self.info.label_names), "train_samples": len(self.train_ds),  # type: ignore[arg-type]
            "test_samples": len(self.test_ds)},  # type: ignore[arg-type]
            "model_args": dict(getattr(self.model, "model_args", {})), "num_params": self.num_params,
            "world_size": self.ctx.world_size, "parallel": self.cfg.parallel,
            "hardware": hardware_description(self.ctx.device), "torch": torch.__version__}

    # ------------------------------------------------------------------------------------------- loop
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nb = self.ctx.device.type == "cuda"
        x = x.to(self.ctx.device, non_blocking=nb, memory_format=self.memory_format)
        return x, y.to(self.ctx.device, non_blocking=nb)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.net.train()
        self.batch_sampler.set_epoch(epoch)
        steps = self.steps_per_epoch
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.ctx.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.ctx.device)
        seen = 0
        bar = self._bar(steps, f"epoch {epoch + 1}/{self.recipe.epochs}")
        world = self.ctx.world_size if self.shard else 1
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader):
            if step >= steps:
                break
            x, y = self._to_device(x, y)
            res = train_step(self.net, x, y, self.optimizer, scaler=self.scaler, autocast=self._autocast,
                             micro_batches=self.cfg.grad_accum, no_sync=lambda: self.mode.no_sync(self.net))
            self.scheduler.step()
            if step % 50 == 0 and not math.isfinite(float(res.loss)):
                raise FloatingPointError(f"training loss is {float(res.loss)} at epoch {epoch + 1} step {step + 1}; "
                                         "lower --lr or try --amp bf16 instead of fp16")
            loss_sum += res.loss_sum
            correct += res.correct
            seen += res.samples
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps - 1:
                    dt = time.perf_counter() - t0
                    bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{float(correct) / seen:.4f}",
                                    lr=f"{lr:.3g}", img_s=f"{seen * world / max(dt, 1e-9):.0f}")
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
        total_loss, total_correct, total_seen = self._sum_over_ranks([float(loss_sum), float(correct), float(seen)])
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"training loss became {total_loss} in epoch {epoch + 1}; lower --lr or try "
                                     "--amp bf16 instead of fp16")
        n = max(total_seen, 1)
        return {"lr": lr, "train_loss": total_loss / n, "train_acc": total_correct / n,
                "train_time_s": elapsed, "train_img_per_s": total_seen / max(elapsed, 1e-9),
                "train_samples": int(total_seen)}

    def evaluate(self) -> dict[str, float]:
        totals = evaluate(self.net, self.test_loader, prepare=self._to_device, autocast=self._autocast,
                          limit_batches=self.cfg.limit_val_batches)
        loss_sum, correct, seen = self._sum_over_ranks([totals.loss_sum, float(totals.correct), float(totals.samples)])
        totals.loss_sum, totals.correct, totals.samples = loss_sum, int(correct), int(seen)
        return totals.metrics()

    def _sum_over_ranks(self, values: list[float]) -> list[float]:
        """Totals over the data shards (ranks that read the same batches are not added up)."""
        return all_reduce_sum(values, self.ctx) if self.shard else list(values)

    def _bar(self, total: int, desc: str) -> Any:
        if not (self.cfg.progress and self.ctx.is_main):
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # progress bars come with the [train] extra
            return None
        return tqdm(total=total, desc=desc, mininterval=1.0, dynamic_ncols=True, leave=False)

    def checkpoint_state(self, epoch: int, model_state: dict[str, Any], optimizer_state: dict[str, Any]
                         ) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model_state, "optimizer": optimizer_state,
                "scheduler": plain_scheduler_state(self.scheduler.state_dict()),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "rng": capture_rng_state(), "config": self.cfg.to_dict(), "history": self.history,
                "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                "model_name": self.cfg.model, "model_args": dict(getattr(self.model, "model_args", {})),
                "dataset": self._run_record()["dataset"], "recipe": self.recipe.to_dict(),
                "hardware": hardware_description(self.ctx.device), "world_size": self.ctx.world_size}

    def run(self) -> RunResult:
        cfg, ctx = self.cfg, self.ctx
        if ctx.is_main:
            self.log(f"[train] {cfg.model} ({self.num_params:,} params) on {self.info.name} "
                     f"({len(self.train_ds)} train / {len(self.test_ds)} test), recipe {self.recipe.name}: "  # type: ignore[arg-type]
                     f"{self.recipe.epochs} epochs, batch {self.recipe.batch_size}, lr {self.recipe.lr}, "
                     f"device {ctx.device}, world {ctx.world_size}, run dir {self.run_dir}")
            if self.start_epoch:
                self.log(f"[train] resumed after epoch {self.start_epoch}")
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
            if ctx.rank > 0:
                _seed_everything(cfg.seed + ctx.rank + 1000003 * self.start_epoch)
        wall0 = self.history[-1]["elapsed_s"] if self.history else 0.0
        for epoch in range(self.start_epoch, self.recipe.epochs):
            t0 = time.perf_counter()
            row: dict[str, Any] = {"epoch": epoch + 1}
            row.update(self.train_epoch(epoch))
            row.update(self.evaluate())
            row["epoch_time_s"] = time.perf_counter() - t0
            wall0 += row["epoch_time_s"]
            row["elapsed_s"] = wall0
            self.history.append(row)
            if row["test_acc"] > self.best_acc:
                self.best_acc, self.best_epoch = row["test_acc"], epoch + 1
            # every rank: for a sharding mode this is a collective
            model_state, optimizer_state = self.mode.training_state(self.net, self.model, self.optimizer)
            if ctx.is_main:
                self._save(self.checkpoint_state(epoch + 1, model_state, optimizer_state),
                           is_best=self.best_epoch == epoch + 1)
                self.tb.log_epoch(row)
                self.log(f"[train] epoch {epoch + 1}/{self.recipe.epochs}: loss {row['train_loss']:.4f} "
                         f"train acc {row['train_acc']:.4f} test acc {row['test_acc']:.4f} "
                         f"({row['train_img_per_s']:.0f} img/s, {row['epoch_time_s']:.1f}s)")
            if ctx.distributed:
                torch.distributed.barrier()
        self.tb.close()
        result = RunResult(self.run_dir, self.history, self.best_acc, self.best_epoch, wall0,
                           info={"hardware": hardware_description(ctx.device), "world_size": ctx.world_size})
        if cfg.publish and ctx.is_main:
            result.published = publish_run(self.run_dir, cfg.publish, which=cfg.publish_which,
                                           push_to_hub=cfg.push_to_hub, log=self.log)
        if ctx.distributed:
            torch.distributed.barrier()
        return result

    def _save(self, state: dict[str, Any], is_best: bool) -> None:
        ckpt_dir = self.run_dir / "checkpoints"
        atomic_torch_save(state, ckpt_dir / "last.pt")
        if is_best:
            atomic_torch_save(state, ckpt_dir / "best.pt")
        write_metrics(self.run_dir, self.history)
        plot_history(self.history, self.run_dir / "curves.png", label=self.cfg.model,
                     title=f"{self.cfg.model} on {self.info.name}")


def train(cfg: TrainConfig, *, ctx: DistContext | None = None, log: Callable[[str], None] | None = None
          ) -> RunResult:
    """Run (or resume) the training described by ``cfg``; see the module docstring for what it writes."""
    own_ctx = ctx is None
    ctx = ctx or setup_distributed(cfg.device)
    log = log or (lambda msg: print(msg, flush=True))
    try:
        run = _Run(cfg, ctx, log)
        run.setup()
        return run.run()
    finally:
        if own_ctx:
            teardown_distributed(ctx)
