"""Learning-rate schedules, stepped once per optimizer step.

A recipe's schedule is a pure function of the global step: the multiplier of the base learning rate
at step ``t`` of ``steps_per_epoch * epochs``. Keeping it a function of the step (rather than of
accumulated state) makes resume exact and the schedule easy to test and plot.

- ``"step"``: the paper's piecewise-constant schedule, ×``lr_gamma`` at each epoch in ``lr_milestones``.
- ``"cosine"``: half a cosine from the base rate down to 0 over the whole run.

Both may start with ``warmup_epochs`` of linear warm-up (from ``1/warmup_steps`` of the rate to all of it).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch

__all__ = ["SCHEDULES", "lr_factor", "build_scheduler"]

SCHEDULES = ("step", "cosine")


def lr_factor(step: int, *, steps_per_epoch: int, epochs: int, schedule: str, warmup_epochs: float = 0.0,
              lr_milestones: Sequence[int] = (), lr_gamma: float = 0.1) -> float:
    """The multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}; valid choices: {list(SCHEDULES)}")
    warmup = round(warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "step":
        return lr_gamma ** sum(step >= m * steps_per_epoch for m in lr_milestones)
    total = max(epochs * steps_per_epoch - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total) / total))


def build_scheduler(optimizer: torch.optim.Optimizer, *, steps_per_epoch: int, epochs: int, schedule: str,
                    warmup_epochs: float = 0.0, lr_milestones: Sequence[int] = (), lr_gamma: float = 0.1
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor`, to be stepped after every optimizer step."""
    fn = partial(lr_factor, steps_per_epoch=steps_per_epoch, epochs=epochs, schedule=schedule,
                 warmup_epochs=warmup_epochs, lr_milestones=tuple(lr_milestones), lr_gamma=lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
