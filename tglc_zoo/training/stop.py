"""Stopping a run cleanly on SIGTERM (pre-emption) or SIGINT (Ctrl-C): finish the step, save, exit.

:class:`StopSignals` records the signal instead of letting it kill the process mid-step. The trainer
asks :meth:`StopSignals.agreed` after every optimizer step; under ``torchrun`` this is a one-number
all-reduce (MAX), so every rank stops after the same step even when only one of them got the signal,
and all of them take part in the checkpoint that follows. A second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch.distributed as dist

from ..distributed.context import DistContext, all_reduce_sum, named_collective

__all__ = ["StopSignals"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Context manager: while inside, SIGTERM / SIGINT set :attr:`signum` (see the module docstring)."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in _SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old.clear()

    def agreed(self, ctx: DistContext) -> int:
        """The signal any rank received (0: none); a collective when the run is distributed."""
        if not ctx.distributed or not dist.is_initialized():
            return self.signum
        with named_collective("the all-reduce after each optimizer step (does any rank stop?)", ctx):
            return int(all_reduce_sum([float(self.signum)], ctx, op=dist.ReduceOp.MAX)[0])

    @staticmethod
    def name(signum: int) -> str:
        return signal.Signals(signum).name
