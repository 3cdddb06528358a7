"""The paper's claim split into its four parts, each checked against a study's cells."""
from __future__ import annotations

from dataclasses import dataclass

from tglc_zoo.layers import CONV_LABELS

from .cells import CellTable


@dataclass(frozen=True)
class ClaimCheck:
    """One part of the claim; ``holds`` is None while the cells it needs have not been trained."""

    claim: str
    holds: bool | None
    detail: str


def claim_checks(cells: CellTable, baselines: tuple[str, ...] = ("shuffle", "flgc")) -> list[ClaimCheck]:
    """The four parts: GC's error climbs with N, GC-2L stays close to SC, GC-2L beats GC at every N, and
    GC-2L beats the ``baselines`` (the other fixes of GC the study trains: Shuffle and FLGC by default,
    Shuffle alone for a study without FLGC) at large N.

    The margin is twice the pooled seed standard deviation (0 while no cell has two seeds). GC's rise
    must exceed it; GC-2L is "close to SC" when its gap is within it or under half of GC's gap; the
    two "beats" checks compare means, and the detail says which differences exceed the margin.
    """
    noise = cells.seed_noise()
    margin = 2.0 * noise if noise is not None else 0.0
    return [_gc_climbs(cells, margin), _close_to_sc(cells, margin), _beats_gc(cells, margin, noise),
            _beats_baselines(cells, margin, noise, baselines)]


def common_groups(cells: CellTable) -> list[int]:
    """The N at which both GC and GC-2L have a cell."""
    gc2l = set(cells.groups_of("gc2l"))
    return [n for n in cells.groups_of("gc") if n in gc2l]


def _gc_climbs(cells: CellTable, margin: float) -> ClaimCheck:
    claim = "GC's error climbs as N grows"
    ns = cells.groups_of("gc")
    if len(ns) < 2:
        return ClaimCheck(claim, None, "needs two N")
    rise = cells.err("gc", ns[-1]) - cells.err("gc", ns[0])
    return ClaimCheck(claim, rise > margin, f"GC N={ns[0]} → N={ns[-1]}: {rise:+.2f} points")


def _close_to_sc(cells: CellTable, margin: float) -> ClaimCheck:
    """At the largest N both GC and GC-2L were run at."""
    claim = "GC-2L stays close to SC"
    common, sc = common_groups(cells), cells.sc
    if sc is None or not common:
        return ClaimCheck(claim, None, "needs SC and a GC/GC-2L pair")
    n = common[-1]
    gap, gc_gap = cells.err("gc2l", n) - sc.err_mean, cells.err("gc", n) - sc.err_mean
    return ClaimCheck(claim, gap <= max(margin, 0.5 * gc_gap),
                      f"gap to SC at N={n}: GC-2L {gap:+.2f}, GC {gc_gap:+.2f} points")


def _beats_gc(cells: CellTable, margin: float, noise: float | None) -> ClaimCheck:
    claim = "GC-2L beats GC at every N"
    common = common_groups(cells)
    if not common:
        return ClaimCheck(claim, None, "needs a GC/GC-2L pair")
    wins = [n for n in common if cells.err("gc2l", n) < cells.err("gc", n)]
    clear = [n for n in common if cells.err("gc", n) - cells.err("gc2l", n) > margin]
    detail = f"lower mean at N = {wins or 'none'} of {common}"
    if noise is not None:
        worse = [n for n in common if cells.err("gc2l", n) - cells.err("gc", n) > margin]
        detail += (f"; lower by more than {margin:.2f} points at N = {clear or 'none'}, "
                   f"higher by more than that at N = {worse or 'none'}")
    return ClaimCheck(claim, len(wins) == len(common), detail)


def _beats_baselines(cells: CellTable, margin: float, noise: float | None, baselines: tuple[str, ...]) -> ClaimCheck:
    names = " and ".join(CONV_LABELS[o] for o in baselines)
    claim = f"GC-2L beats {names} at large N"
    large = [n for n in common_groups(cells) if n >= 8 and all(cells.get(o, n) is not None for o in baselines)] \
        if baselines else []
    if not large:
        return ClaimCheck(claim, None, f"needs GC-2L and {names} at N ≥ 8")
    err = cells.err
    lost = [f"{CONV_LABELS[o]} N={n} ({err(o, n):.2f} vs {err('gc2l', n):.2f})"
            for n in large for o in baselines if err("gc2l", n) >= err(o, n)]
    detail = f"N = {large}; " + (f"GC-2L not lower vs {', '.join(lost)}" if lost else "GC-2L lower everywhere")
    if noise is not None:
        clear = [f"{CONV_LABELS[o]} N={n}" for n in large for o in baselines if err(o, n) - err("gc2l", n) > margin]
        detail += f"; lower by more than {margin:.2f} points vs {', '.join(clear) or 'none'}"
    return ClaimCheck(claim, not lost, detail)
