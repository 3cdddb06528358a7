"""The one training step and the one evaluation loop, shared by the trainer and fine-tuning."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StepResult", "EvalTotals", "train_step", "evaluate"]

ContextFactory = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class StepResult:
    """One optimizer step: the last micro-batch's loss, and the batch's summed loss and correct count."""

    loss: torch.Tensor        # detached, scalar
    loss_sum: torch.Tensor    # float64, summed over the batch's samples
    correct: torch.Tensor     # int64
    samples: int


def train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, *,
               scaler: torch.amp.GradScaler | None = None, autocast: ContextFactory = contextlib.nullcontext,
               micro_batches: int = 1, no_sync: ContextFactory | None = None) -> StepResult:
    """Cross-entropy forward/backward on ``(x, y)`` in ``micro_batches`` chunks, then one optimizer step.

    Gradients are averaged over the micro-batches (each contributes ``loss / micro_batches``);
    ``no_sync`` (e.g. DDP's) wraps every micro-batch but the last.
    """
    optimizer.zero_grad(set_to_none=True)
    chunks = list(zip(x.chunk(micro_batches), y.chunk(micro_batches)))
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    loss = torch.zeros(())
    for i, (xm, ym) in enumerate(chunks):
        last = i == len(chunks) - 1
        with (contextlib.nullcontext() if last or no_sync is None else no_sync()), autocast():
            out = net(xm)
            loss = F.cross_entropy(out, ym)
        scaled = loss / len(chunks)
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += loss.detach().double() * len(ym)
        correct += (out.detach().argmax(1) == ym).sum()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return StepResult(loss.detach(), loss_sum, correct, len(y))


@dataclass
class EvalTotals:
    """Summed cross-entropy, correct predictions and samples over an evaluation pass."""

    loss_sum: float
    correct: int
    samples: int

    def metrics(self) -> dict[str, float]:
        """``test_loss`` (mean), ``test_acc`` and ``test_err`` (fractions), ``test_samples``."""
        n = max(self.samples, 1)
        acc = self.correct / n
        return {"test_loss": self.loss_sum / n, "test_acc": acc, "test_err": 1.0 - acc,
                "test_samples": int(self.samples)}


@torch.no_grad()
def evaluate(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
             prepare: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
             autocast: ContextFactory = contextlib.nullcontext, limit_batches: int | None = None) -> EvalTotals:
    """Cross-entropy and top-1 of ``net`` (in eval mode) over ``batches``; ``prepare`` moves a batch to the device."""
    net.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for step, (x, y) in enumerate(batches):
        if limit_batches is not None and step >= limit_batches:
            break
        if prepare is not None:
            x, y = prepare(x, y)
        with autocast():
            out = net(x)
        loss_sum += float(F.cross_entropy(out.float(), y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        seen += len(y)
    return EvalTotals(loss_sum, correct, seen)
