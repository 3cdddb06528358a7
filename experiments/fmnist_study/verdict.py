"""What the numbers say about the paper's claim, in plain sentences computed from the cells (none is
written by hand: each names the numbers it rests on)."""
from __future__ import annotations

from .cells import CellTable, recovery
from .claims import ClaimCheck, claim_checks, common_groups


def overall_verdict(checks: list[ClaimCheck]) -> str:
    """One plain sentence: do the numbers support the claim, in full, in part, or not at all?"""
    done = [c for c in checks if c.holds is not None]
    held = [c.claim for c in done if c.holds]
    failed = [c.claim for c in done if not c.holds]
    missing = [c.claim for c in checks if c.holds is None]
    if not done:
        return "Verdict: not enough runs to test the paper's claim yet."
    if not failed:
        word = "support" if not missing else "so far support"
    else:
        word = "do not support" if not held else "partly support"
    parts = [f"{label}: {'; '.join(claims)}" for label, claims in
             (("holds", held), ("does not hold", failed), ("not yet measured", missing)) if claims]
    return f"Verdict: our numbers {word} the paper's claim ({'. '.join(parts)})."


def claim_verdict(cells: CellTable, baselines: tuple[str, ...] = ("shuffle", "flgc")) -> list[str]:
    """The verdict, each part of the claim with its numbers, the error gaps to SC, how GC's excess error over
    GC-2L moves with N, and the seed spread the differences are measured against."""
    common = common_groups(cells)
    if not common:
        return ["No GC/GC-2L pair has finished yet: nothing to conclude."]
    checks = claim_checks(cells, baselines)
    out = [overall_verdict(checks) + _provisional(cells)]
    for c in checks:
        mark = {True: "holds", False: "does not hold", None: "not measured"}[c.holds]
        out.append(f"{c.claim}: {mark} ({c.detail}).")
    sc = cells.sc
    if sc is not None:
        out.append(_gaps_to_sc(cells, sc.err_mean, common))
    # does the GC - GC-2L gap grow with N?
    gaps = [cells.err("gc", n) - cells.err("gc2l", n) for n in common]
    if len(gaps) > 1:
        grows = all(b >= a for a, b in zip(gaps, gaps[1:]))
        out.append(f"GC's excess error over GC-2L by N: {', '.join(f'{g:+.2f}' for g in gaps)} "
                   f"({'grows monotonically' if grows else 'not monotone'} with N).")
    noise = cells.seed_noise()
    if noise is not None:
        stds = cells.seed_stds()
        out.append(f"Seed-to-seed standard deviation where measured: {min(stds):.2f}–{max(stds):.2f} points "
                   f"(pooled {noise:.2f}); a difference counts as real above {2 * noise:.2f} points.")
    else:
        out.append("No cell has two seeds yet, so the noise level is unknown and no difference is tested against it.")
    return out


def _provisional(cells: CellTable) -> str:
    """Why the verdict is provisional, if it is: no cell, or not every cell, has two seeds."""
    single = sum(not c.several_seeds for c in cells)
    if cells.seed_noise() is None:
        return " Provisional: no cell has two seeds, so no difference has been tested against the noise."
    if single:
        verb, their = ("has", "its") if single == 1 else ("have", "their")
        return (f" Provisional: {single} of {len(cells)} cells {verb} one seed, so {their} differences are single "
                "runs measured against the spread of the others.")
    return ""


def _gaps_to_sc(cells: CellTable, sc: float, common: list[int]) -> str:
    parts = []
    for n in common:
        e_gc, e_gc2l = cells.err("gc", n), cells.err("gc2l", n)
        # a share only of a loss GC has, and only where GC-2L is not behind GC
        share = recovery(sc, e_gc, e_gc2l)
        won = (f" (GC-2L wins back {100 * share:.0f} % of GC's gap)"
               if share is not None and sc < e_gc and e_gc2l <= e_gc else "")
        parts.append(f"N={n}: GC {e_gc - sc:+.2f}, GC-2L {e_gc2l - sc:+.2f}{won}")
    return f"Error gap to SC ({sc:.2f}%) in points: {', '.join(parts)}."
