"""Fine-tuning a checkpoint on a new dataset: new head, optional frozen body or lower body lr.

``finetune(source, train_set, test_set, ...)`` loads any :func:`tglc_zoo.from_pretrained` source with
a new head (and stem adapted to the data's channels), trains it with SGD + cosine schedule, measures
top-1 on ``test_set``, and returns the model and the measured metrics; :func:`save_finetuned` writes
the checkpoint folder whose model card names its base model.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..models._base import ZooModel
from ..pretrained import from_pretrained, save_pretrained
from .loop import evaluate as evaluate_batches
from .loop import train_step
from .schedule import build_scheduler

__all__ = ["FinetuneConfig", "body_and_head_groups", "evaluate", "finetune", "save_finetuned"]


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune.

    Attributes:
        epochs: passes over the training set.
        lr: learning rate of the new head.
        body_lr_scale: the body's learning rate is ``lr * body_lr_scale`` (``0`` freezes the body,
            its BN statistics included).
        batch_size, momentum, weight_decay: SGD settings.
        limit_train_batches: stop each epoch after this many batches (quick runs).
        seed: seeds the data order.
    """

    epochs: int = 5
    lr: float = 0.05
    body_lr_scale: float = 0.1
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    limit_train_batches: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if not self.lr > 0 or not 0 <= self.body_lr_scale <= 1:
            raise ValueError(f"need lr > 0 and 0 <= body_lr_scale <= 1, got lr={self.lr}, "
                             f"body_lr_scale={self.body_lr_scale}")

    @property
    def freeze_body(self) -> bool:
        return self.body_lr_scale == 0


def body_and_head_groups(model: nn.Module, cfg: FinetuneConfig) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the classifier at ``lr``, the body at ``lr * body_lr_scale`` (or frozen)."""
    head = {id(p) for p in cast(ZooModel, model).get_classifier().parameters()}
    body = [p for p in model.parameters() if id(p) not in head]
    head_params = [p for p in model.parameters() if id(p) in head]
    if cfg.freeze_body:
        for p in body:
            p.requires_grad_(False)
        return [{"params": head_params, "lr": cfg.lr}]
    return [{"params": head_params, "lr": cfg.lr}, {"params": body, "lr": cfg.lr * cfg.body_lr_scale}]


def _train_mode(model: nn.Module, freeze_body: bool) -> None:
    if not freeze_body:
        model.train()
        return
    model.eval()  # a frozen body keeps its BN statistics too
    cast(ZooModel, model).get_classifier().train()


def evaluate(model: nn.Module, data: Dataset, *, batch_size: int = 256, device: str | torch.device = "cpu"
             ) -> dict[str, float]:
    """Top-1 accuracy (%, timm's ``top1``) and mean cross-entropy of ``model`` on ``data``."""
    totals = evaluate_batches(model, DataLoader(data, batch_size=batch_size),
                              prepare=lambda x, y: (x.to(device), y.to(device)))
    if totals.samples == 0:
        raise ValueError("the evaluation set is empty")
    return {"top1": round(100.0 * totals.correct / totals.samples, 4),
            "loss": round(totals.loss_sum / totals.samples, 6)}


def finetune(source: str | os.PathLike[str], train_set: Dataset, test_set: Dataset, *, num_classes: int,
             in_chans: int | None = None, label_names: Sequence[str] | None = None,
             input_size: Sequence[int] | None = None, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, config: FinetuneConfig = FinetuneConfig(),
             device: str | torch.device = "cpu", log: Callable[[str], None] | None = None,
             **load_kwargs: Any) -> tuple[nn.Module, dict[str, float]]:
    """Fine-tune the checkpoint ``source`` on ``train_set``; return the model and its metrics on ``test_set``.

    ``num_classes`` (and ``in_chans``) adapt the head (and stem) of the checkpoint; ``label_names``,
    ``input_size``, ``mean`` and ``std`` describe the new data in the model's ``pretrained_cfg``.
    ``load_kwargs`` go to :func:`from_pretrained` (``revision``, ``local_files_only``, ...).
    """
    model = from_pretrained(source, num_classes=num_classes, in_chans=in_chans, map_location=device, **load_kwargs)
    new_cfg = {k: tuple(v) for k, v in dict(input_size=input_size, mean=mean, std=std).items() if v is not None}
    zoo = cast(ZooModel, model)  # from_pretrained builds tglc_zoo models
    zoo.pretrained_cfg = {**zoo.pretrained_cfg, **new_cfg, "tag": None,
                          "label_names": list(label_names) if label_names else None}
    groups = body_and_head_groups(model, config)
    optimizer = torch.optim.SGD(groups, momentum=config.momentum, weight_decay=config.weight_decay)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=False,
                        generator=torch.Generator().manual_seed(config.seed))
    steps_per_epoch = min(len(loader), config.limit_train_batches or len(loader))
    scheduler = build_scheduler(optimizer, steps_per_epoch=steps_per_epoch, epochs=config.epochs, schedule="cosine")
    for epoch in range(config.epochs):
        _train_mode(model, config.freeze_body)
        running = 0.0
        for i, (x, y) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            running += float(train_step(model, x.to(device), y.to(device), optimizer).loss)
            scheduler.step()
        if log:
            log(f"[finetune] epoch {epoch + 1}/{config.epochs}: train loss {running / steps_per_epoch:.4f}")
    for p in model.parameters():
        p.requires_grad_(True)
    metrics = evaluate(model, test_set, device=device)
    if log:
        log(f"[finetune] test top1 {metrics['top1']:.2f}%, loss {metrics['loss']:.4f}")
    return model, metrics


def save_finetuned(model: nn.Module, directory: str | os.PathLike[str], *, base_model: str,
                   metrics: dict[str, float], dataset: str, config: FinetuneConfig, **card_fields: Any) -> Path:
    """Save a fine-tuned model; its card names ``base_model`` and the fine-tuning settings."""
    if Path(base_model).exists():  # a local path, never to be read as a Hub repo id
        base_model = str(Path(base_model).resolve())
    settings = ", ".join(f"{k}={v}" for k, v in asdict(config).items())
    recipe = (card_fields.pop("recipe", None)
              or f"Fine-tuned from `{base_model}` with tglc_zoo.training.finetune ({settings}).")
    return save_pretrained(model, directory, metrics=metrics, dataset=dataset, base_model=str(base_model),
                           recipe=recipe, **card_fields)
