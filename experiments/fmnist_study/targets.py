"""A study's targets, measured rather than assumed: SC's mean top-1 reaches a bar, and GC-2L's mean error at
one N is below GC's by more than twice the pooled seed spread."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .cells import CellTable


@dataclass(frozen=True)
class Targets:
    """The bars: SC's mean top-1 (%) and the N at which GC-2L must be ahead of GC."""

    sc_top1: float = 94.0
    groups: int = 16


@dataclass(frozen=True)
class TargetCheck:
    """One target; ``met`` is None while the cells it needs are missing."""

    target: str
    met: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def target_checks(cells: CellTable, targets: Targets = Targets()) -> list[TargetCheck]:
    """Both targets. The second is None until GC and GC-2L at N = ``targets.groups`` have two seeds each
    and the spread is known."""
    return [_sc_top1(cells, targets.sc_top1), _gc2l_ahead(cells, targets.groups)]


def _sc_top1(cells: CellTable, bar: float) -> TargetCheck:
    target = f"SC top-1 ≥ {bar:.1f} %"
    sc = cells.sc
    if sc is None:
        return TargetCheck(target, None, "SC has not been trained")
    top1 = 100.0 - sc.err_mean
    return TargetCheck(target, top1 >= bar, f"SC top-1 {top1:.2f} % (mean of {_seeds(len(sc.errs))}), "
                                            f"{top1 - bar:+.2f} points from the target")


def _gc2l_ahead(cells: CellTable, groups: int) -> TargetCheck:
    target = f"GC-2L ahead of GC at N = {groups} by more than 2σ of the seed spread"
    noise = cells.seed_noise()
    gc, gc2l = cells.get("gc", groups), cells.get("gc2l", groups)
    if gc is None or gc2l is None:
        return TargetCheck(target, None, f"needs GC and GC-2L at N = {groups}")
    if noise is None:
        return TargetCheck(target, None, "no cell has two seeds yet: the seed spread is unknown")
    n_gc, n_gc2l = len(gc.errs), len(gc2l.errs)
    if min(n_gc, n_gc2l) < 2:
        return TargetCheck(target, None,
                           f"GC and GC-2L at N = {groups} need two seeds each (now {n_gc} and {n_gc2l}); their "
                           f"difference so far is {gc.err_mean - gc2l.err_mean:+.2f} points (GC over "
                           f"{_seeds(n_gc)}, GC-2L over {_seeds(n_gc2l)}) against 2σ = {2 * noise:.2f}")
    lead = gc.err_mean - gc2l.err_mean
    side = "below" if lead >= 0 else "above"
    return TargetCheck(target, lead > 2 * noise,
                       f"GC-2L's error is {abs(lead):.2f} points {side} GC's (means of {_seeds(n_gc2l)} and "
                       f"{_seeds(n_gc)}); 2σ = {2 * noise:.2f} points (σ = {noise:.2f}, pooled)")


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def target_lines(checks: list[TargetCheck]) -> list[str]:
    mark = {True: "met", False: "missed", None: "not measured yet"}
    return [f"{c.target}: {mark[c.met]} ({c.detail})." for c in checks]
