"""The training loop: any zoo model on any supported dataset, with exact resume.

``train(config)`` builds data and model, trains for the recipe's epochs (evaluating after each), and
leaves in ``config.output``::

    config.json                 the resolved run configuration
    metrics.jsonl, metrics.csv  one row per epoch
    curves.png                  training loss and test error per epoch (Figure 4 style)
    checkpoints/last.pt         resumable state after the latest epoch (atomic)
    checkpoints/best.pt         the same for the epoch with the best test accuracy
    tensorboard/                when the tensorboard package is installed
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import DatasetInfo, build_datasets
from .checkpoint import (CHECKPOINT_FORMAT, CheckpointError, atomic_torch_save, capture_rng_state, load_checkpoint,
                         plain_scheduler_state, resolve_resume_path, restore_rng_state, restore_scheduler_state)
from .config import TrainConfig
from .ddp import DistContext, all_reduce_sum, setup_distributed, teardown_distributed
from .metrics import TensorBoardLogger, atomic_write_text, plot_history, write_metrics
from .recipes import Recipe
from .sampler import GlobalBatchSampler, ShardSampler
from .schedule import build_scheduler

__all__ = ["ParallelMode", "PARALLEL_MODES", "register_parallel_mode", "RunResult", "train", "build_model",
           "hardware_description", "RunExistsError", "ModelDatasetMismatchError"]

# Settings that, on resume, may differ from the saved run (they do not change the arithmetic).
_RUNTIME_FIELDS = ("epochs", "output", "resume", "publish", "publish_which", "push_to_hub", "device", "workers",
                   "progress", "tensorboard", "limit_val_batches", "data_dir", "download", "compile")


class RunExistsError(FileExistsError):
    """The output folder already holds a run and ``--resume`` was not given."""


class ModelDatasetMismatchError(ValueError):
    """The model cannot be trained on the dataset (shapes, classes, or a resumed run's identity)."""


@dataclass(frozen=True)
class ParallelMode:
    """How the model is wrapped for multi-process training.

    ``wrap(model, ctx)`` returns the module used for forward/backward and evaluation; rank 0's
    unwrapped ``model.state_dict()`` is what is checkpointed and published, so a wrapper that shards
    the model must keep (or gather into) the full model on rank 0.  ``shard_data`` says whether each rank reads its own slice of every
    global batch (data parallel) or all ranks read the whole batch (e.g. group/model parallel).
    """

    name: str
    wrap: Callable[[nn.Module, DistContext], nn.Module]
    shard_data: bool = True
    description: str = ""


def _wrap_data_parallel(model: nn.Module, ctx: DistContext) -> nn.Module:
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(model, device_ids=device_ids)


PARALLEL_MODES: dict[str, ParallelMode] = {
    "data": ParallelMode("data", _wrap_data_parallel, True,
                         "DistributedDataParallel over torchrun's processes (a no-op when running alone)"),
}


def register_parallel_mode(mode: ParallelMode) -> None:
    """Make ``mode`` selectable with ``TrainConfig.parallel`` / ``--parallel`` (used by tglc_zoo.distributed)."""
    PARALLEL_MODES[mode.name] = mode


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


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU {cpu}, {torch.get_num_threads()} threads"


def build_model(model_name: str, info: DatasetInfo, overrides: dict[str, Any], pretrained: bool = False
                ) -> nn.Module:
    """``create_model`` with the dataset's classes and channels; failures name model and dataset."""
    from .. import create_model

    kwargs = dict(overrides)
    for key, want in (("num_classes", info.num_classes), ("in_chans", info.in_chans)):
        if key in kwargs and kwargs[key] != want:
            raise ModelDatasetMismatchError(f"{key}={kwargs[key]} was requested but dataset {info.name!r} has "
                                            f"{key}={want}")
        kwargs[key] = want
    try:
        model = create_model(model_name, pretrained=pretrained, **kwargs)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ModelDatasetMismatchError(f"cannot build model {model_name!r} for dataset {info.name!r} "
                                        f"({info.in_chans} channels, {info.num_classes} classes): {exc}") from exc
    model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), "input_size": tuple(info.input_size),
                            "mean": tuple(info.mean), "std": tuple(info.std), "num_classes": info.num_classes}
    return model


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


class _Run:
    """State of one training run (one process)."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext, log: Callable[[str], None]) -> None:
        self.cfg, self.ctx, self.log = cfg, ctx, log
        self.ckpt: dict[str, Any] | None = None
        self._rng_to_restore: dict[str, Any] | None = None
        # Fault injection for tests: SIGKILL this process right after that many optimizer steps in total.
        kill_at = os.environ.get("TGLC_TRAIN_KILL_AT_STEP")
        self._kill_at_step = int(kill_at) if kill_at else None
        if cfg.resume:
            path = resolve_resume_path(cfg.resume)
            self.ckpt = load_checkpoint(path)
            self.cfg = cfg = self._merge_resume_config(cfg, self.ckpt["config"], path)
        self.run_dir = Path(cfg.output)
        if self.ckpt is None and (self.run_dir / "checkpoints" / "last.pt").exists():
            raise RunExistsError(f"{self.run_dir} already holds a run (checkpoints/last.pt); pass "
                                 f"--resume {self.run_dir} to continue it or choose another --output")
        self.recipe: Recipe = cfg.resolved_recipe()
        self.mode = PARALLEL_MODES.get(cfg.parallel)
        if self.mode is None:
            raise ValueError(f"unknown parallel mode {cfg.parallel!r}; valid choices: {sorted(PARALLEL_MODES)}")

    @staticmethod
    def _merge_resume_config(cfg: TrainConfig, saved: dict[str, Any], path: Path) -> TrainConfig:
        for key in ("model", "dataset"):
            if cfg.to_dict()[key] not in (None, "", saved[key]):
                raise ModelDatasetMismatchError(
                    f"--resume {path}: that run trains {key} {saved[key]!r}, not {cfg.to_dict()[key]!r}; "
                    "resume it with the same --model/--dataset or start a new run")
        merged = dict(saved)
        new = cfg.to_dict()
        for key in _RUNTIME_FIELDS:
            if new[key] is not None:
                merged[key] = new[key]
        if not cfg.output:
            merged["output"] = str(path.parent.parent) if path.parent.name == "checkpoints" else saved["output"]
        return TrainConfig.from_dict(merged)

    # ------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        _seed_everything(cfg.seed)
        if ctx.is_main and cfg.download:
            build_datasets(cfg.dataset, cfg.data_dir, download=True)
        if ctx.distributed:
            torch.distributed.barrier()
        train_ds, test_ds, self.info = build_datasets(cfg.dataset, cfg.data_dir, augment=cfg.augment,
                                                      image_size=cfg.image_size)
        self.train_ds = _subset(train_ds, cfg.train_subset, cfg.seed)
        self.test_ds = test_ds
        self.model = build_model(cfg.model, self.info, cfg.model_overrides(), cfg.pretrained)
        _check_forward(self.model, torch.stack([test_ds[i][0] for i in range(min(2, len(test_ds)))]), cfg.model,
                       self.info)
        if ctx.rank > 0:  # same weights everywhere (DDP also broadcasts), different augmentation draws
            _seed_everything(cfg.seed + ctx.rank)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(ctx.device, memory_format=self.memory_format)
        r = self.recipe
        if r.optimizer.lower() != "sgd":
            raise ValueError(f"recipe {r.name!r} asks for optimizer {r.optimizer!r}; only 'SGD' is implemented")
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=r.lr, momentum=r.momentum,
                                         weight_decay=r.weight_decay, nesterov=r.nesterov)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[cfg.amp]
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=cfg.amp == "fp16")
        self.start_epoch, self.history = 0, []
        self.best_acc, self.best_epoch = -1.0, -1
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.shard = shard = self.mode.shard_data and ctx.distributed
        rank, world = (ctx.rank, ctx.world_size) if shard else (0, 1)
        self.local_batch = r.batch_size // world
        if r.batch_size % (world * cfg.grad_accum):
            raise ValueError(f"batch size {r.batch_size} must be divisible by world size x grad_accum = "
                             f"{world} x {cfg.grad_accum}")
        self.batch_sampler = GlobalBatchSampler(len(self.train_ds), r.batch_size, seed=cfg.seed, rank=rank,
                                                world_size=world)
        self.steps_per_epoch = len(self.batch_sampler)
        if cfg.limit_train_batches is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.limit_train_batches)
        self.scheduler = build_scheduler(self.optimizer, steps_per_epoch=self.steps_per_epoch, epochs=r.epochs,
                                         schedule=r.schedule, warmup_epochs=r.warmup_epochs,
                                         lr_milestones=r.lr_milestones, lr_gamma=r.lr_gamma)
        if self.ckpt is not None:
            self._load_state(self.ckpt)
        self.wrapped = self.mode.wrap(self.model, ctx)
        if self.ckpt is not None and hasattr(self.wrapped, "localize_optimizer_state"):
            self.wrapped.localize_optimizer_state(self.optimizer)  # state was loaded into the full model
        self.net = self.wrapped
        if cfg.compile:
            self.net = torch.compile(self.net)
        pin = ctx.device.type == "cuda"
        self.train_loader = DataLoader(self.train_ds, batch_sampler=self.batch_sampler, num_workers=cfg.workers,
                                       pin_memory=pin)
        self.test_loader = DataLoader(self.test_ds, batch_size=max(self.local_batch, 1), num_workers=cfg.workers,
                                      sampler=ShardSampler(len(self.test_ds), rank=rank, world_size=world),
                                      pin_memory=pin)
        self.tb = TensorBoardLogger(self.run_dir, enabled=cfg.tensorboard and ctx.is_main)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in (self.run_dir / "checkpoints").glob(".*.tmp"):  # left by a process killed mid-save
                stale.unlink(missing_ok=True)
            atomic_write_text(self.run_dir / "config.json", json.dumps(self._run_record(), indent=2) + "\n")

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
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
            "model_args": dict(getattr(self.model, "model_args", {})),
            "num_params": getattr(self, "num_params", None) or sum(p.numel() for p in self.model.parameters()),
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
        cfg = self.cfg
        self.net.train()
        self.batch_sampler.set_epoch(epoch)
        steps = self.steps_per_epoch
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.ctx.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.ctx.device)
        seen = 0
        bar = self._bar(steps, f"epoch {epoch + 1}/{self.recipe.epochs}")
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader):
            if step >= steps:
                break
            x, y = self._to_device(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            chunks = list(zip(x.chunk(cfg.grad_accum), y.chunk(cfg.grad_accum)))
            for i, (xm, ym) in enumerate(chunks):
                sync = i == len(chunks) - 1 or not hasattr(self.net, "no_sync")
                with (contextlib.nullcontext() if sync else self.net.no_sync()), self._autocast():
                    out = self.net(xm)
                    loss = F.cross_entropy(out, ym)
                self.scaler.scale(loss / len(chunks)).backward()
                loss_sum += loss.detach().double() * len(ym)
                correct += (out.detach().argmax(1) == ym).sum()
            if step % 50 == 0 and not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"training loss is {float(loss.detach())} at epoch {epoch + 1} step {step + 1}; "
                                         "lower --lr or try --amp bf16 instead of fp16")
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            seen += len(y)
            if self._kill_at_step is not None and epoch * steps + step + 1 == self._kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)  # fault injection for tests (TGLC_TRAIN_KILL_AT_STEP)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps - 1:
                    dt = time.perf_counter() - t0
                    bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{float(correct) / seen:.4f}",
                                    lr=f"{lr:.3g}", img_s=f"{seen * (self.ctx.world_size if self.shard else 1) / max(dt, 1e-9):.0f}")
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
        total_loss, total_correct, total_seen = self._sum_over_ranks([float(loss_sum), float(correct), float(seen)])
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"training loss became {total_loss} in epoch {epoch + 1}; lower --lr or try "
                                     "--amp bf16 instead of fp16")
        return {"lr": lr, "train_loss": total_loss / max(total_seen, 1), "train_acc": total_correct / max(total_seen, 1),
                "train_time_s": elapsed, "train_img_per_s": total_seen / max(elapsed, 1e-9),
                "train_samples": int(total_seen)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.net.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        for step, (x, y) in enumerate(self.test_loader):
            if self.cfg.limit_val_batches is not None and step >= self.cfg.limit_val_batches:
                break
            x, y = self._to_device(x, y)
            with self._autocast():
                out = self.net(x)
            loss_sum += float(F.cross_entropy(out.float(), y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
        loss_sum, correct, seen = self._sum_over_ranks([loss_sum, float(correct), float(seen)])
        acc = correct / max(seen, 1)
        return {"test_loss": loss_sum / max(seen, 1), "test_acc": acc, "test_err": 1.0 - acc, "test_samples": int(seen)}

    def _sum_over_ranks(self, values: list[float]) -> list[float]:
        """Totals over the data shards (ranks that read the same batches are not added up)."""
        return all_reduce_sum(values, self.ctx) if self.shard else list(values)

    def _bar(self, total: int, desc: str) -> Any:
        if not (self.cfg.progress and self.ctx.is_main):
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, mininterval=1.0, dynamic_ncols=True, leave=False)

    def _full_training_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Model and optimizer state in single-process layout (a collective for sharding wrappers)."""
        if hasattr(self.wrapped, "gather_training_state"):
            return self.wrapped.gather_training_state(self.optimizer)
        return self.model.state_dict(), self.optimizer.state_dict()

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
            model_state, optimizer_state = self._full_training_state()  # every rank (may be a collective)
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
            from .publish import publish_run

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
