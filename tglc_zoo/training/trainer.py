"""The training loop: any zoo model on any supported dataset, with exact resume.

``train(config)`` builds data and model, trains for the recipe's epochs (evaluating after each), and
leaves in ``config.output``::

    config.json                 the resolved run configuration
    metrics.jsonl, metrics.csv  one row per epoch
    curves.png                  training loss and test error per epoch (Figure 4 style)
    memory.json                 peak memory of every rank
    checkpoints/                step-level checkpoints, the latest and the best (:mod:`.checkpoint_dir`)
    tensorboard/                when the tensorboard package is installed
    .lock                       held by the process writing the folder (:mod:`.run_folder`)

Checkpoints are written at the end of every epoch and every ``checkpoint_every`` optimizer steps; each
holds the model, the optimizer, the scheduler, every rank's random-number-generator states and the
position in the epoch, so a resumed run continues with the very batches, augmentation draws and
arithmetic of an uninterrupted one. SIGTERM and SIGINT stop a run after the current step with a
checkpoint (:mod:`.stop`).

Multi-process runs go through a :class:`~tglc_zoo.distributed.ParallelMode` (``config.parallel``): it
builds and wraps the model, says which slice of each global batch a process reads, and saves and loads
the training state — in single-process layout, or sharded (every rank its own slices).
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import resource
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import DatasetInfo, build_datasets
from ..distributed.context import (
    DistContext,
    all_reduce_sum,
    named_collective,
    setup_distributed,
    teardown_distributed,
)
from ..distributed.modes import Parallelized, ParallelMode, get_parallel_mode
from ..distributed.sharded_checkpoint import read_full_tensors
from ..errors import (
    CheckpointError,
    ModelDatasetMismatchError,
    RunExistsError,
    RunLockedError,
    TrainingInterrupted,
)
from ..layers import autotune
from ..util.atomic import atomic_write_json, clear_stale_temporaries
from ..util.hardware import hardware_description
from .build import build_model_for, pretrained_weights_for
from .checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    plain_scheduler_state,
    restore_rng_state,
    restore_scheduler_state,
    rng_from_tensors,
    rng_to_tensors,
)
from .checkpoint_dir import CheckpointDir, latest_entry, load_checkpoint, resolve_resume_path
from .config import TrainConfig, runtime_fields
from .loop import evaluate, train_step
from .metrics import TensorBoardLogger, plot_history, write_metrics
from .publish import publish_run
from .recipes import Recipe
from .run_folder import RUN_FILES, RunLock, check_output_folder, check_run_files
from .sampler import GlobalBatchSampler, ShardSampler
from .schedule import build_scheduler
from .stop import StopSignals

__all__ = ["RunResult", "train", "RUN_FILES", "merge_resume_config"]


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


@dataclass
class _EpochTotals:
    """Running sums of the epoch in progress (checkpointed mid-epoch, so a resumed epoch reports the same)."""

    loss_sum: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    elapsed: float = 0.0


def _check_forward(net: nn.Module, sample: torch.Tensor, model_name: str, info: DatasetInfo) -> None:
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(sample)
    except RuntimeError as exc:
        raise ModelDatasetMismatchError(f"model {model_name!r} cannot take dataset {info.name!r}'s inputs of "
                                        f"shape {tuple(sample.shape[1:])}: {str(exc)[:300]}") from exc
    finally:
        net.train(was_training)
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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


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
        if new[key] not in (None, "") and (new[key] != defaults.get(key) or key not in saved):
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


def _resume_target(cfg: TrainConfig) -> Path | None:
    """The checkpoint ``cfg.resume`` names (``"auto"``: ``--output``'s latest, or none for a fresh start)."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        if not cfg.output:
            raise ValueError("--resume auto needs --output: the run folder to continue or to start")
        return resolve_resume_path(cfg.output) if latest_entry(cfg.output) is not None else None
    return resolve_resume_path(cfg.resume)


class _Run:
    """State of one training run (one process)."""

    history: list[dict[str, Any]]
    par: Parallelized

    def __init__(self, cfg: TrainConfig, ctx: DistContext, log: Callable[[str], None]) -> None:
        self.cfg, self.ctx, self.log = cfg, ctx, log
        self.ckpt: dict[str, Any] | None = None
        self.ckpt_path: Path | None = None
        path = _resume_target(cfg)
        if path is not None:
            self.ckpt_path = path
            self.ckpt = load_checkpoint(path)
            self.cfg = cfg = merge_resume_config(cfg, self.ckpt["config"], path)
        elif not (cfg.model and cfg.dataset):
            raise ValueError(f"--resume {cfg.resume}: {cfg.output} holds no run yet, and starting one needs --model "
                             "and --dataset")
        self.run_dir = Path(cfg.output)
        self.recipe: Recipe = cfg.resolved_recipe()
        if self.ckpt is not None and cfg.parallel == "group" and not ctx.distributed:
            # a group-parallel run resumed by one process continues as one process (its slices read whole)
            log(f"[train] resuming the group-parallel run {self.run_dir} in a single process")
            self.cfg = cfg = TrainConfig.from_dict({**cfg.to_dict(), "parallel": "data"})
        self.mode: ParallelMode = get_parallel_mode(cfg.parallel)
        self.lock = RunLock(self.run_dir)
        self.hardware = hardware_description(ctx.device)  # read once: every checkpoint records it
        self.stop = StopSignals()
        self.global_step = 0
        self.start_epoch, self.start_step = 0, 0
        self.totals = _EpochTotals()
        self.epoch_lr = 0.0
        self.last_saved_step = -1
        self._rng_to_restore: dict[str, Any] | None = None
        self._rng_restored = False

    # ------------------------------------------------------------------------------------------ setup
    def claim_folder(self) -> None:
        """Rank 0 checks the folder and takes its lock; every rank learns whether that worked."""
        error = ""
        if self.ctx.is_main:
            try:
                check_run_files(self.run_dir)  # nothing, not even the lock, goes into a folder of other files
                self.lock.acquire()  # then: a second trainer learns who writes the folder
                clear_stale_temporaries(self.run_dir)  # what a killed writer of this folder left half-written
                check_output_folder(self.run_dir, resuming=self.ckpt is not None)
                note = self.lock.stale_note()
                if note:
                    self.log(f"[train] {note}")
            except (RunExistsError, OSError, ValueError) as exc:
                self.lock.release()
                error = f"{type(exc).__name__}: {exc}"
                if not self.ctx.distributed:
                    raise
        if self.ctx.distributed:
            with named_collective("the start of the run (rank 0 taking the run folder)", self.ctx):
                failed = all_reduce_sum([1.0 if error else 0.0], self.ctx)[0]
            if failed:
                raise RunLockedError(error or f"rank 0 could not take the run folder {self.run_dir} (see its error)")

    def setup(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        _seed_everything(cfg.seed)
        self._data()
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.memory_format = memory_format
        # a sharded run reads only its slices of pretrained weights (when they load as they are)
        weights = (pretrained_weights_for(cfg.model, self.info, cfg.model_overrides())
                   if cfg.pretrained and self.mode.sharded_checkpoints and self.ckpt is None else None)
        self.par = self.mode.setup(lambda: build_model_for(cfg.model, self.info, cfg.model_overrides(),
                                                           cfg.pretrained and weights is None), ctx, memory_format)
        self.model, self.net = self.par.model, self.par.net
        if weights is not None:
            self.mode.load_weights(self.par, weights)
            self.par.notes.append(f"read this rank's slices of the pretrained weights {weights}")
        for note in self.par.notes:
            if ctx.is_main:
                self.log(f"[train] {note}")
        sample = torch.stack([self.test_ds[i][0] for i in range(min(2, len(cast(Sized, self.test_ds))))])
        _check_forward(self.net, sample.to(ctx.device, memory_format=memory_format), cfg.model, self.info)
        if cfg.autotune or os.environ.get("TGLC_ZOO_AUTOTUNE", "") not in ("", "0"):
            self._autotune(sample)
        if ctx.rank > 0:  # same weights everywhere, different augmentation draws
            _seed_everything(cfg.seed + ctx.rank)
        self.num_params = self._count_params()
        self._optimizer()
        self._loaders()
        if self.ckpt is not None:
            assert self.ckpt_path is not None
            self._load_state(self.ckpt, self.ckpt_path)
        if cfg.compile:
            self.net = cast(nn.Module, torch.compile(self.net))  # an OptimizedModule; the stubs say Callable
        self.tb = TensorBoardLogger(self.run_dir, enabled=cfg.tensorboard and ctx.is_main)
        self.ckpt_dir = CheckpointDir(self.run_dir, cfg.keep_checkpoints)
        if ctx.is_main:
            self.ckpt_dir.prepare()
            atomic_write_json(self.run_dir / "config.json", self._run_record())

    def _autotune(self, sample: torch.Tensor) -> None:
        """Pin each GC-2L layer to the implementation measured fastest here for a training batch (cached)."""
        if self.par.layout is not None:
            self.log("[train] --autotune: a group-parallel shard runs its own per-group kernels; nothing to tune")
            return
        batch = max(self.recipe.batch_size // (self.par.data_world * self.cfg.grad_accum), 1)
        x = sample[:1].expand(batch, *sample.shape[1:]).to(self.ctx.device, memory_format=self.memory_format)
        self.model.train()
        chosen = autotune(self.model, x)
        if self.ctx.is_main and chosen:
            counts = {impl: sum(v == impl for v in chosen.values()) for impl in sorted(set(chosen.values()))}
            self.log(f"[train] --autotune pinned {len(chosen)} GC-2L layers: {counts}")

    def _data(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        if ctx.is_main and cfg.download:
            build_datasets(cfg.dataset, cfg.data_dir, download=True)
        if ctx.distributed:
            dist.barrier()
        train_ds, test_ds, self.info = build_datasets(cfg.dataset, cfg.data_dir, augment=cfg.augment,
                                                      image_size=cfg.image_size)
        self.train_ds = _subset(train_ds, cfg.train_subset, cfg.seed)
        self.test_ds = test_ds

    def _count_params(self) -> int:
        """The single-process model's parameter count (a shard holds only its part)."""
        counts = getattr(self.net, "param_counts", None)
        if counts is None or self.par.layout is None:
            return sum(p.numel() for p in self.model.parameters())
        local = counts()
        return int(local["sharded"] * self.par.layout.groups + local["replicated"])

    def _optimizer(self) -> None:
        r = self.recipe
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=r.lr, momentum=r.momentum,
                                         weight_decay=r.weight_decay, nesterov=r.nesterov)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[self.cfg.amp]
        self.scaler = torch.amp.GradScaler(self.ctx.device.type, enabled=self.cfg.amp == "fp16")
        self.history = []
        self.best_acc, self.best_epoch = -1.0, -1

    def _loaders(self) -> None:
        cfg, r, par = self.cfg, self.recipe, self.par
        world = par.data_world
        self.local_batch = r.batch_size // world
        if r.batch_size % (world * cfg.grad_accum):
            raise ValueError(f"batch size {r.batch_size} must be divisible by data-parallel replicas x grad_accum = "
                             f"{world} x {cfg.grad_accum}")
        self.batch_sampler = GlobalBatchSampler(len(cast(Sized, self.train_ds)), r.batch_size, seed=cfg.seed,
                                                rank=par.data_rank, world_size=world)
        self.steps_per_epoch = len(self.batch_sampler)
        if cfg.limit_train_batches is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.limit_train_batches)
        self.scheduler = build_scheduler(self.optimizer, steps_per_epoch=self.steps_per_epoch, epochs=r.epochs,
                                         schedule=r.schedule, warmup_epochs=r.warmup_epochs,
                                         lr_milestones=r.lr_milestones, lr_gamma=r.lr_gamma)
        pin = self.ctx.device.type == "cuda"
        self.train_loader = DataLoader(self.train_ds, batch_sampler=self.batch_sampler, num_workers=cfg.workers,
                                       pin_memory=pin)
        self.test_loader = DataLoader(self.test_ds, batch_size=max(self.local_batch, 1), num_workers=cfg.workers,
                                      sampler=ShardSampler(len(cast(Sized, self.test_ds)), rank=par.data_rank,
                                                           world_size=world),
                                      pin_memory=pin)

    # -------------------------------------------------------------------------------------- resume
    def _load_state(self, ckpt: dict[str, Any], path: Path) -> None:
        rng: dict[str, Any] | None = ckpt["rng"] if self.ctx.is_main else None
        try:
            if "sharded" in ckpt and self.mode.sharded_checkpoints:
                tensors = self.mode.load_sharded(path, self.par, self.optimizer)
                rng = rng_from_tensors(tensors) if tensors else None
                self._restore_hyper_parameters(ckpt)
            else:
                model_state, optimizer_state = self._single_process_state(ckpt, path)
                self.mode.load_training_state(self.net, self.model, self.optimizer, model_state, optimizer_state)
                ranks = ckpt.get("rng_ranks") or []
                if len(ranks) == self.ctx.world_size:
                    rng = rng_from_tensors(ranks[self.ctx.rank])
            restore_scheduler_state(self.scheduler, ckpt["scheduler"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"the checkpoint {path} does not fit model {self.cfg.model!r}: "
                                  f"{str(exc)[:300]}") from exc
        self.start_epoch = int(ckpt["epoch"])
        self.start_step = int(ckpt.get("epoch_step", 0))
        self.global_step = int(ckpt.get("global_step", self.start_epoch * self.steps_per_epoch))
        self.last_saved_step = self.global_step
        self.totals = _EpochTotals(**ckpt.get("epoch_totals", {}))
        self.history = [dict(row) for row in ckpt["history"]]
        self.best_acc, self.best_epoch = float(ckpt["best_acc"]), int(ckpt["best_epoch"])
        self._rng_to_restore = rng

    def _single_process_state(self, ckpt: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(model, optimizer)`` state dicts in single-process layout (read whole from a sharded checkpoint)."""
        if "sharded" not in ckpt:
            return ckpt["model"], ckpt["optimizer"]
        model_state = read_full_tensors(path, "model.")
        index = {n: i for i, (n, _) in enumerate(self.model.named_parameters())}
        optim = read_full_tensors(path, "optim.") if ckpt["optimizer"].get("state_keys") else {}
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in optim.items():
            name, _, entry = key.rpartition(".")
            state.setdefault(index[name], {})[entry] = value
        return model_state, {"state": state, "param_groups": ckpt["optimizer"]["param_groups"]}

    def _restore_hyper_parameters(self, ckpt: dict[str, Any]) -> None:
        for group, saved in zip(self.optimizer.param_groups, ckpt["optimizer"]["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})

    def _restore_generators(self) -> None:
        """The saved random-number generators (once, on resume); a rank without saved ones is reseeded."""
        if self.ckpt is None or self._rng_restored:
            return
        self._rng_restored = True
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
        elif self.ctx.rank > 0:  # this rank's generators were not saved (the run had fewer processes)
            _seed_everything(self.cfg.seed + self.ctx.rank + 1000003 * self.global_step)

    def _run_record(self) -> dict[str, Any]:
        layout = self.par.layout
        return {"config": self.cfg.to_dict(), "recipe": self.recipe.to_dict(), "dataset": {
            "name": self.info.name, "num_classes": self.info.num_classes, "in_chans": self.info.in_chans,
            "input_size": list(self.info.input_size), "mean": list(self.info.mean), "std": list(self.info.std),
            "label_names": list(self.info.label_names), "train_samples": len(self.train_ds),  # type: ignore[arg-type]
            "test_samples": len(self.test_ds)},  # type: ignore[arg-type]
            "model_args": dict(getattr(self.model, "model_args", {})), "num_params": self.num_params,
            "world_size": self.ctx.world_size, "parallel": self.cfg.parallel,
            "mesh": {"data": layout.data, "group": layout.groups} if layout is not None else None,
            "hardware": self.hardware, "torch": torch.__version__}

    # ------------------------------------------------------------------------------------------- loop
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nb = self.ctx.device.type == "cuda"
        x = x.to(self.ctx.device, non_blocking=nb, memory_format=self.memory_format)
        return x, y.to(self.ctx.device, non_blocking=nb)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        self.batch_sampler.set_epoch(epoch, start_batch=start)
        batches = iter(self.train_loader)  # draws the loader's base seed from the generator
        if start:  # a resumed epoch: the saved state already holds that draw, made at the epoch's start
            self._restore_generators()
        for i, batch in enumerate(batches, start):
            if i >= self.steps_per_epoch:
                break
            yield i, batch

    def train_epoch(self, epoch: int, start: int) -> dict[str, float]:
        self.net.train()
        steps = self.steps_per_epoch
        if start == 0:
            self.epoch_lr = self.optimizer.param_groups[0]["lr"]
        lr, totals = self.epoch_lr, self.totals
        bar = self._bar(steps, f"epoch {epoch + 1}/{self.recipe.epochs}", start)
        t0 = time.perf_counter() - totals.elapsed
        for step, (x, y) in self._batches(epoch, start):
            x, y = self._to_device(x, y)
            res = train_step(self.net, x, y, self.optimizer, scaler=self.scaler, autocast=self._autocast,
                             micro_batches=self.cfg.grad_accum, no_sync=lambda: self.mode.no_sync(self.net))
            self.scheduler.step()
            self.global_step += 1
            if step % 50 == 0 and not math.isfinite(float(res.loss)):
                raise FloatingPointError(f"training loss is {float(res.loss)} at epoch {epoch + 1} step {step + 1}; "
                                         "lower --lr or try --amp bf16 instead of fp16")
            totals.loss_sum += float(res.loss_sum)
            totals.correct += float(res.correct)
            totals.seen += res.samples
            totals.elapsed = time.perf_counter() - t0
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps - 1:
                    bar.set_postfix(loss=f"{totals.loss_sum / totals.seen:.4f}", lr=f"{lr:.3g}",
                                    acc=f"{totals.correct / totals.seen:.4f}",
                                    img_s=f"{totals.seen * self.par.data_world / max(totals.elapsed, 1e-9):.0f}")
            self._between_steps(epoch, step + 1)
        if bar is not None:
            bar.close()
        total_loss, total_correct, total_seen = self._sum_over_replicas([totals.loss_sum, totals.correct,
                                                                         totals.seen])
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"training loss became {total_loss} in epoch {epoch + 1}; lower --lr or try "
                                     "--amp bf16 instead of fp16")
        n = max(total_seen, 1)
        elapsed = totals.elapsed
        self.totals = _EpochTotals()
        return {"lr": lr, "train_loss": total_loss / n, "train_acc": total_correct / n,
                "train_time_s": elapsed, "train_img_per_s": total_seen / max(elapsed, 1e-9),
                "train_samples": int(total_seen)}

    def _between_steps(self, epoch: int, done: int) -> None:
        """After each optimizer step: stop on a signal (with a checkpoint), or save every ``checkpoint_every``."""
        signum = self.stop.agreed(self.ctx)
        every = self.cfg.checkpoint_every
        mid_epoch = done < self.steps_per_epoch
        if signum or (every and mid_epoch and self.global_step % every == 0):
            self.save(epoch, done, is_best=False)
        if signum:
            name = StopSignals.name(signum)
            raise TrainingInterrupted(
                f"stopped by {name} after step {done} of epoch {epoch + 1} (global step {self.global_step}); "
                f"checkpoint saved in {self.run_dir / 'checkpoints'}. Continue with: tglc-train --resume "
                f"{self.run_dir}", signum)

    def evaluate(self) -> dict[str, float]:
        with named_collective("the broadcast of replica 0's BatchNorm statistics before evaluation", self.ctx):
            self.mode.sync_buffers(self.par)
        totals = evaluate(self.net, self.test_loader, prepare=self._to_device, autocast=self._autocast,
                          limit_batches=self.cfg.limit_val_batches)
        loss_sum, correct, seen = self._sum_over_replicas([totals.loss_sum, float(totals.correct),
                                                           float(totals.samples)])
        totals.loss_sum, totals.correct, totals.samples = loss_sum, int(correct), int(seen)
        return totals.metrics()

    def _sum_over_replicas(self, values: list[float]) -> list[float]:
        """Totals over the data shards (ranks that read the same batches are not added up)."""
        if self.par.data_world == 1:
            return list(values)
        with named_collective("the all-reduce of the epoch's metrics", self.ctx):
            return all_reduce_sum(values, self.ctx, group=self.par.data_group)

    def _bar(self, total: int, desc: str, start: int) -> Any:
        if not (self.cfg.progress and self.ctx.is_main):
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # progress bars come with the [train] extra
            return None
        return tqdm(total=total, initial=start, desc=desc, mininterval=1.0, dynamic_ncols=True, leave=False)

    # --------------------------------------------------------------------------------- checkpoints
    def _trainer_state(self, epoch: int, epoch_step: int) -> dict[str, Any]:
        """Everything but the tensors of model and optimizer (the same on every rank)."""
        totals = vars(self.totals).copy() if epoch_step else {}
        record = self._run_record()
        return {"format": CHECKPOINT_FORMAT, "epoch": epoch, "epoch_step": epoch_step,
                "global_step": self.global_step, "epoch_totals": totals, "epoch_lr": self.epoch_lr,
                "scheduler": plain_scheduler_state(self.scheduler.state_dict()),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "rng": capture_rng_state(), "config": self.cfg.to_dict(), "history": self.history,
                "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                "model_name": self.cfg.model, "model_args": dict(getattr(self.model, "model_args", {})),
                "dataset": record["dataset"], "recipe": record["recipe"], "hardware": record["hardware"],
                "world_size": self.ctx.world_size, "mesh": record["mesh"]}

    def _gather_rng(self) -> list[dict[str, torch.Tensor]]:
        """Every rank's RNG states (a collective in distributed runs), for a single-process-layout file."""
        mine = rng_to_tensors(capture_rng_state())
        if not self.ctx.distributed:
            return [mine]
        out: list[dict[str, torch.Tensor]] = [{} for _ in range(self.ctx.world_size)]
        for key in sorted(mine):
            parts = [torch.empty_like(mine[key]) for _ in range(self.ctx.world_size)]
            dist.all_gather(parts, mine[key].contiguous())
            for r, t in enumerate(parts):
                out[r][key] = t
        return out

    def save(self, epoch: int, epoch_step: int, is_best: bool) -> None:
        """Collective: a checkpoint of the state after ``epoch_step`` steps of epoch ``epoch`` (0: its start)."""
        if self.global_step == self.last_saved_step and not is_best and epoch_step:
            return
        with named_collective(f"the checkpoint at global step {self.global_step}", self.ctx):
            self._save(epoch, epoch_step, is_best)

    def _save(self, epoch: int, epoch_step: int, is_best: bool) -> None:
        self.mode.sync_buffers(self.par)
        state = self._trainer_state(epoch, epoch_step)
        if self.mode.sharded_checkpoints:
            state["optimizer"] = {"param_groups": self.optimizer.state_dict()["param_groups"],
                                  "state_keys": sorted({k for s in self.optimizer.state.values() for k in s})}
            path = self.ckpt_dir.sharded_path(self.global_step)
            self.mode.save_sharded(path, self.par, self.optimizer, rng_to_tensors(state["rng"]),
                                   lambda folder: self.ckpt_dir.write_trainer_state(folder, state))
            if self.ctx.is_main:
                self.ckpt_dir.commit_sharded(self.global_step, is_best)
        else:
            model_state, optimizer_state = self.mode.training_state(self.net, self.model, self.optimizer)
            ranks = self._gather_rng()
            if self.ctx.is_main:
                state.update(model=model_state, optimizer=optimizer_state,
                             rng_ranks=ranks if self.ctx.distributed else None)
                self.ckpt_dir.save_file(state, self.global_step, is_best)
        self.last_saved_step = self.global_step
        if self.ctx.distributed:
            dist.barrier()

    # ---------------------------------------------------------------------------------------- run
    def run(self) -> RunResult:
        cfg, ctx = self.cfg, self.ctx
        if ctx.is_main:
            self.log(f"[train] {cfg.model} ({self.num_params:,} params) on {self.info.name} "
                     f"({len(self.train_ds)} train / {len(self.test_ds)} test), recipe {self.recipe.name}: "  # type: ignore[arg-type]
                     f"{self.recipe.epochs} epochs, batch {self.recipe.batch_size}, lr {self.recipe.lr}, "
                     f"device {ctx.device}, world {ctx.world_size} ({cfg.parallel}), run dir {self.run_dir}")
            if self.ckpt is not None:
                within = f" and {self.start_step} steps of epoch {self.start_epoch + 1}" if self.start_step else ""
                self.log(f"[train] resumed after epoch {self.start_epoch}{within} (global step {self.global_step}) "
                         f"from {self.ckpt_path}")
        if self.ckpt is not None:
            if not self.start_step:
                self._restore_generators()
            self.epoch_lr = float(self.ckpt.get("epoch_lr") or self.optimizer.param_groups[0]["lr"])
        wall0 = self.history[-1]["elapsed_s"] if self.history else 0.0
        with self.stop:
            for epoch in range(self.start_epoch, self.recipe.epochs):
                t0 = time.perf_counter()
                row: dict[str, Any] = {"epoch": epoch + 1}
                start, self.start_step = self.start_step, 0
                row.update(self.train_epoch(epoch, start))
                row.update(self.evaluate())
                row["epoch_time_s"] = time.perf_counter() - t0
                wall0 += row["epoch_time_s"]
                row["elapsed_s"] = wall0
                row["peak_rss_mb"] = self._peak_memory()[0]
                self.history.append(row)
                if row["test_acc"] > self.best_acc:
                    self.best_acc, self.best_epoch = row["test_acc"], epoch + 1
                self.save(epoch + 1, 0, is_best=self.best_epoch == epoch + 1)
                if ctx.is_main:
                    write_metrics(self.run_dir, self.history)
                    plot_history(self.history, self.run_dir / "curves.png", label=cfg.model,
                                 title=f"{cfg.model} on {self.info.name}")
                    self.tb.log_epoch(row)
                    self.log(f"[train] epoch {epoch + 1}/{self.recipe.epochs}: loss {row['train_loss']:.4f} "
                             f"train acc {row['train_acc']:.4f} test acc {row['test_acc']:.4f} "
                             f"({row['train_img_per_s']:.0f} img/s, {row['epoch_time_s']:.1f}s)")
        self.tb.close()
        peak, per_rank = self._peak_memory()
        if ctx.is_main:
            atomic_write_json(self.run_dir / "memory.json", {"peak_rss_mb_per_rank": per_rank, "peak_rss_mb": peak,
                                                             "world_size": ctx.world_size})
        result = RunResult(self.run_dir, self.history, self.best_acc, self.best_epoch, wall0,
                           info={"hardware": self.hardware, "world_size": ctx.world_size,
                                 "peak_rss_mb_per_rank": per_rank})
        if cfg.publish and ctx.is_main:
            result.published = publish_run(self.run_dir, cfg.publish, which=cfg.publish_which,
                                           push_to_hub=cfg.push_to_hub, log=self.log)
        if ctx.distributed:
            dist.barrier()
        return result

    def _peak_memory(self) -> tuple[float, list[float]]:
        """Peak resident memory (MiB): the largest over the ranks, and every rank's (a collective)."""
        mine = _peak_rss_mb()
        if not self.ctx.distributed:
            return mine, [mine]
        t = torch.zeros(self.ctx.world_size, dtype=torch.float64)
        t[self.ctx.rank] = mine
        with named_collective("the all-reduce of every rank's peak memory", self.ctx):
            dist.all_reduce(t)
        per_rank = [round(v, 1) for v in t.tolist()]
        return max(per_rank), per_rank


def train(cfg: TrainConfig, *, ctx: DistContext | None = None, log: Callable[[str], None] | None = None
          ) -> RunResult:
    """Run (or resume) the training described by ``cfg``; see the module docstring for what it writes."""
    own_ctx = ctx is None
    ctx = ctx or setup_distributed(cfg.device, timeout_s=cfg.dist_timeout)
    log = log or (lambda msg: print(msg, flush=True))
    run: _Run | None = None
    try:
        run = _Run(cfg, ctx, log)
        run.claim_folder()
        run.setup()
        return run.run()
    finally:
        if run is not None:
            run.lock.release()
        if own_ctx:
            teardown_distributed(ctx)

