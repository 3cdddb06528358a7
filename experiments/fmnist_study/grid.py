"""Test error against the number of groups N for every conv type (the paper's Tables 1/3, Figures 4/5).

A study is a grid of training runs — SC, and GC/GC-2L/Shuffle/FLGC at each N, each for one or more
seeds — all with the same recipe. Every run lives in its own run directory under the study folder;
a run that finished (its record ``<records>/<run_id>.json`` exists) is skipped, and one that was
interrupted resumes from its last complete checkpoint, so the study can be spread over several
sessions. Records are small and meant to be committed; run directories (checkpoints) are not.
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tglc_zoo.layers import CONV_LABELS
from tglc_zoo.util.atomic import atomic_path, atomic_write_json


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid."""

    arch: str
    conv_type: str
    groups: int
    seed: int

    @property
    def model(self) -> str:
        return self.arch if self.conv_type == "sc" else f"{self.arch}_{self.conv_type}_n{self.groups}"

    @property
    def run_id(self) -> str:
        return f"{self.model}_s{self.seed}"


@dataclass
class StudyConfig:
    """The grid and the one recipe that every run of it shares."""

    arch: str = "wrn16_2"
    dataset: str = "fmnist"
    data_dir: str | None = None
    conv_types: tuple[str, ...] = ("gc", "gc2l", "shuffle", "flgc")
    groups: tuple[int, ...] = (2, 4, 8, 16)
    seeds: tuple[int, ...] = (0,)
    # extra seeds for SC and for these N (the large-N cells, where the claim is made)
    extra_seeds: tuple[int, ...] = (1,)
    extra_seed_groups: tuple[int, ...] = (8, 16)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    lr_milestones: tuple[int, ...] = (3, 4)
    lr_gamma: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "step"
    warmup_epochs: float = 0.0
    train_subset: int | None = 20000
    device: str = "cpu"
    channels_last: bool = False
    amp: str | None = None
    recipe: str = "fmnist"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def baselines(self) -> tuple[str, ...]:
        """The other fixes of GC this grid trains, which the claim's last part compares GC-2L with."""
        return tuple(c for c in self.conv_types if c in ("shuffle", "flgc"))

    def plan(self) -> list[RunSpec]:
        """Every run, in training order, seed by seed: SC, then every conv type at N = 4, 8, 16, 2, …
        (``extra_seeds`` only for SC and ``extra_seed_groups``). An interrupted study thus holds whole
        grids of the first seeds."""
        priority = sorted(self.groups, key=lambda n: (n not in (4, 8), n not in (4, 8, 16), n))
        runs = []
        for s in (*self.seeds, *self.extra_seeds):
            extra = s not in self.seeds
            runs.append(RunSpec(self.arch, "sc", 1, s))
            runs += [RunSpec(self.arch, c, n, s) for n in priority if not extra or n in self.extra_seed_groups
                     for c in self.conv_types]
        return runs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_path(records_dir: Path, spec: RunSpec) -> Path:
    return records_dir / f"{spec.run_id}.json"


def run_one(spec: RunSpec, cfg: StudyConfig, study_dir: Path, records_dir: Path, *, progress: bool = True,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume, or skip) one run and return its result record."""
    from tglc_zoo.training import TrainConfig, train  # the training loop sits beside this study

    run_dir = study_dir / "runs" / spec.run_id
    result_path = record_path(records_dir, spec)
    if result_path.is_file():
        return json.loads(result_path.read_text())
    resume = str(run_dir) if (run_dir / "checkpoints" / "last.pt").is_file() else None
    tcfg = TrainConfig(
        model=spec.model, dataset=cfg.dataset, data_dir=cfg.data_dir, output=str(run_dir), recipe=cfg.recipe,
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_milestones=list(cfg.lr_milestones),
        lr_gamma=cfg.lr_gamma, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=cfg.nesterov,
        schedule=cfg.schedule, warmup_epochs=cfg.warmup_epochs, seed=spec.seed,
        device=cfg.device, channels_last=cfg.channels_last, amp=cfg.amp, train_subset=cfg.train_subset,
        resume=resume, progress=progress, tensorboard=False, **cfg.extra)
    result = train(tcfg, log=log)
    final = result.final
    record = {
        **asdict(spec), "model": spec.model, "run_id": spec.run_id,
        "test_acc": final["test_acc"], "test_err": final["test_err"],
        "best_test_acc": result.best_acc, "train_loss": [r["train_loss"] for r in result.history],
        "test_err_curve": [r["test_err"] for r in result.history],
        "epochs": len(result.history), "train_time_s": result.wall_time_s,
        "params": _count_params(spec, *_data_shape(cfg.dataset)), "hardware": result.info.get("hardware", ""),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(result_path, record)
    return record


def _count_params(spec: RunSpec, in_chans: int, num_classes: int) -> int:
    import torch

    from tglc_zoo.registry import create_model

    with torch.device("meta"):
        model = create_model(spec.model, in_chans=in_chans, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def _data_shape(dataset: str) -> tuple[int, int]:
    from tglc_zoo.data import get_dataset_info

    info = get_dataset_info(dataset)
    return info.in_chans, info.num_classes or 1000


def finished_results(records_dir: Path, plan: Iterable[RunSpec]) -> list[dict[str, Any]]:
    out = []
    for spec in plan:
        path = record_path(records_dir, spec)
        if path.is_file():
            out.append(json.loads(path.read_text()))
    return out


def aggregate(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{conv_type: {N: {err_mean, err_std, errs, seeds, params, train_time_s}}}``: test error in percentage
    points, mean and std over seeds (0 for one seed)."""
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        cells.setdefault((r["conv_type"], r["groups"]), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (conv_type, n), rs in sorted(cells.items(), key=lambda kv: (list(CONV_LABELS).index(kv[0][0]), kv[0][1])):
        errs = [100.0 * r["test_err"] for r in rs]  # records hold fractions; the report speaks in points
        out.setdefault(conv_type, {})[str(n)] = {
            "err_mean": statistics.fmean(errs), "err_std": statistics.stdev(errs) if len(errs) > 1 else 0.0,
            "errs": errs, "seeds": [r["seed"] for r in rs], "params": rs[0]["params"],
            "train_time_s": statistics.fmean(r["train_time_s"] for r in rs),
        }
    return out


def markdown_table(agg: dict[str, dict[str, dict[str, Any]]], groups: tuple[int, ...]) -> str:
    """Paper-style table: test error (%) mean ± std (seeds) and parameters, one row per conv type."""
    lines = ["| conv | N = 1 | " + " | ".join(f"N = {n}" for n in groups) + " |", "|---|---|" + "---|" * len(groups)]
    sc = agg.get("sc", {}).get("1")
    if sc:
        lines.append(f"| SC | {_cell(sc)} |" + " — |" * len(groups))
    for conv_type in ("gc", "gc2l", "shuffle", "flgc"):
        if conv_type in agg:
            cells = [_cell(agg[conv_type][str(n)]) if str(n) in agg[conv_type] else "—" for n in groups]
            lines.append(f"| {CONV_LABELS[conv_type]} | — | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(c: dict[str, Any]) -> str:
    pm = f" ± {c['err_std']:.2f}" if len(c["errs"]) > 1 else ""
    return f"{c['err_mean']:.2f}{pm} ({len(c['errs'])}×, {c['params'] / 1e6:.3f} M)"


def plot_error_vs_groups(agg: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> None:
    """Figure 5 style: test error against N, one line per conv type (mean ± std, every seed as a dot), SC as a
    horizontal reference with its ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for conv_type in ("gc", "gc2l", "shuffle", "flgc"):
        if conv_type not in agg:
            continue
        ns = sorted(int(n) for n in agg[conv_type])
        means = [agg[conv_type][str(n)]["err_mean"] for n in ns]
        stds = [agg[conv_type][str(n)]["err_std"] for n in ns]
        line = ax.errorbar(ns, means, yerr=stds, marker="o", capsize=3, label=CONV_LABELS[conv_type])
        for n in ns:  # every seed, as a small dot beside its cell's mean
            errs = agg[conv_type][str(n)]["errs"]
            if len(errs) > 1:
                ax.scatter([n * 1.04] * len(errs), errs, s=9, alpha=0.6, color=line.lines[0].get_color())
    if "sc" in agg:
        sc = agg["sc"]["1"]
        ax.axhline(sc["err_mean"], color="black", linestyle="--", label="SC")
        if len(sc["errs"]) > 1:  # SC's seed spread (± 1 std) as a band
            ax.axhspan(sc["err_mean"] - sc["err_std"], sc["err_mean"] + sc["err_std"], color="black", alpha=0.08)
    ax.set_xscale("log", base=2)
    ticks = sorted({int(n) for conv_type, cells in agg.items() if conv_type != "sc" for n in cells})
    if ticks:
        ax.set_xticks(ticks, [str(n) for n in ticks])
        ax.minorticks_off()
    ax.set_xlabel("number of groups N")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)


def plot_training_loss(results: list[dict[str, Any]], groups: int, path: Path, title: str) -> None:
    """Figure 4 style: training loss per epoch of SC, GC and GC-2L at one N (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        shown = r["conv_type"] == "sc" or (r["conv_type"] in ("gc", "gc2l") and r["groups"] == groups)
        if r["seed"] != 0 or not shown:
            continue
        label = CONV_LABELS[r["conv_type"]] + ("" if r["conv_type"] == "sc" else f" (N = {groups})")
        ax.plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], marker="o", label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)


def _save_fig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)


def recovery(sc: float, gc: float, gc2l: float) -> float | None:
    """The share of GC's loss against SC that GC-2L wins back: (GC-2L − GC) / (SC − GC). The same for
    accuracies and for errors; None when GC and SC are level."""
    return (gc2l - gc) / (sc - gc) if sc != gc else None


def seed_stds(agg: dict[str, dict[str, dict[str, Any]]]) -> list[float]:
    """The seed-to-seed standard deviation of every cell run with several seeds."""
    return [c["err_std"] for t in agg.values() for c in t.values() if len(c["errs"]) > 1]


def seed_noise(agg: dict[str, dict[str, dict[str, Any]]]) -> float | None:
    """Pooled seed-to-seed standard deviation (points) over the cells run with several seeds; None if none."""
    stds = seed_stds(agg)
    return statistics.fmean(s ** 2 for s in stds) ** 0.5 if stds else None


def claim_checks(agg: dict[str, dict[str, dict[str, Any]]],
                 baselines: tuple[str, ...] = ("shuffle", "flgc")) -> list[dict[str, Any]]:
    """The paper's claim split into its four parts, each checked against the numbers.

    ``baselines`` are the other fixes of GC that the study trains (the last part compares GC-2L with
    them): Shuffle and FLGC by default, Shuffle alone for a study without FLGC.

    ``margin`` is twice the pooled seed standard deviation (0 while no cell has two seeds). GC's rise
    must exceed it; GC-2L is "close to SC" when its gap is within it or under half of GC's gap; the
    two "beats" checks compare means, and the detail says which differences exceed the margin.
    Each check is ``{"claim", "holds", "detail"}``; ``holds`` is None when the cells it needs have
    not been trained.
    """
    noise = seed_noise(agg)
    margin = 2.0 * noise if noise is not None else 0.0
    gc, gc2l = agg.get("gc", {}), agg.get("gc2l", {})
    common = sorted(int(n) for n in gc if n in gc2l)

    def err(conv_type: str, n: int) -> float:
        return agg[conv_type][str(n)]["err_mean"]

    checks: list[dict[str, Any]] = []
    # 1. GC's error climbs as N grows
    ns = sorted(int(n) for n in gc)
    if len(ns) > 1:
        rise = err("gc", ns[-1]) - err("gc", ns[0])
        checks.append(dict(claim="GC's error climbs as N grows", holds=rise > margin,
                           detail=f"GC N={ns[0]} → N={ns[-1]}: {rise:+.2f} points"))
    else:
        checks.append(dict(claim="GC's error climbs as N grows", holds=None, detail="needs two N"))
    # 2. GC-2L stays close to SC at the largest N both were run at
    if "sc" in agg and common:
        n = common[-1]
        gap, gc_gap = err("gc2l", n) - agg["sc"]["1"]["err_mean"], err("gc", n) - agg["sc"]["1"]["err_mean"]
        checks.append(dict(claim="GC-2L stays close to SC", holds=gap <= max(margin, 0.5 * gc_gap),
                           detail=f"gap to SC at N={n}: GC-2L {gap:+.2f}, GC {gc_gap:+.2f} points"))
    else:
        checks.append(dict(claim="GC-2L stays close to SC", holds=None, detail="needs SC and a GC/GC-2L pair"))
    # 3. GC-2L beats GC at every N
    if common:
        wins = [n for n in common if err("gc2l", n) < err("gc", n)]
        clear = [n for n in common if err("gc", n) - err("gc2l", n) > margin]
        detail = f"lower mean at N = {wins or 'none'} of {common}"
        if noise is not None:
            worse = [n for n in common if err("gc2l", n) - err("gc", n) > margin]
            detail += (f"; lower by more than {margin:.2f} points at N = {clear or 'none'}, "
                       f"higher by more than that at N = {worse or 'none'}")
        checks.append(dict(claim="GC-2L beats GC at every N", holds=len(wins) == len(common), detail=detail))
    else:
        checks.append(dict(claim="GC-2L beats GC at every N", holds=None, detail="needs a GC/GC-2L pair"))
    # 4. GC-2L beats the other fixes (Shuffle, FLGC) at large N
    names = " and ".join(CONV_LABELS[o] for o in baselines)
    claim = f"GC-2L beats {names} at large N"
    large = [n for n in common if n >= 8 and all(str(n) in agg.get(o, {}) for o in baselines)] if baselines else []
    if large:
        lost = [f"{CONV_LABELS[o]} N={n} ({err(o, n):.2f} vs {err('gc2l', n):.2f})"
                for n in large for o in baselines if err("gc2l", n) >= err(o, n)]
        detail = f"N = {large}; " + (f"GC-2L not lower vs {', '.join(lost)}" if lost else "GC-2L lower everywhere")
        if noise is not None:
            clear = [f"{CONV_LABELS[o]} N={n}" for n in large for o in baselines if err(o, n) - err("gc2l", n) > margin]
            detail += f"; lower by more than {margin:.2f} points vs {', '.join(clear) or 'none'}"
        checks.append(dict(claim=claim, holds=not lost, detail=detail))
    else:
        checks.append(dict(claim=claim, holds=None, detail=f"needs GC-2L and {names} at N ≥ 8"))
    return checks


def target_checks(agg: dict[str, dict[str, dict[str, Any]]], *, sc_top1: float = 94.0, groups: int = 16
                  ) -> list[dict[str, Any]]:
    """The decisive study's two targets, reported rather than assumed: SC's mean top-1 reaches ``sc_top1``
    (%), and GC-2L's mean error at N = ``groups`` is below GC's by more than twice the pooled seed spread.
    Each is ``{"target", "met", "detail"}``; ``met`` is None while the cells it needs are missing (for the
    second: until GC and GC-2L at N = ``groups`` have two seeds each and the spread is known)."""
    out: list[dict[str, Any]] = []
    target = f"SC top-1 ≥ {sc_top1:.1f} %"
    sc = agg.get("sc", {}).get("1")
    if sc is None:
        out.append(dict(target=target, met=None, detail="SC has not been trained"))
    else:
        top1 = 100.0 - sc["err_mean"]
        out.append(dict(target=target, met=top1 >= sc_top1,
                        detail=f"SC top-1 {top1:.2f} % (mean of {_seeds(len(sc['errs']))}), "
                               f"{top1 - sc_top1:+.2f} points from the target"))
    target = f"GC-2L ahead of GC at N = {groups} by more than 2σ of the seed spread"
    noise = seed_noise(agg)
    gc, gc2l = agg.get("gc", {}).get(str(groups)), agg.get("gc2l", {}).get(str(groups))
    if gc is None or gc2l is None:
        out.append(dict(target=target, met=None, detail=f"needs GC and GC-2L at N = {groups}"))
    elif noise is None:
        out.append(dict(target=target, met=None, detail="no cell has two seeds yet: the seed spread is unknown"))
    elif min(len(gc["errs"]), len(gc2l["errs"])) < 2:
        n_gc, n_gc2l = len(gc["errs"]), len(gc2l["errs"])
        out.append(dict(target=target, met=None,
                        detail=f"GC and GC-2L at N = {groups} need two seeds each (now {n_gc} and {n_gc2l}); their "
                               f"difference so far is {gc['err_mean'] - gc2l['err_mean']:+.2f} points (GC over "
                               f"{_seeds(n_gc)}, GC-2L over {_seeds(n_gc2l)}) against 2σ = {2 * noise:.2f}"))
    else:
        lead = gc["err_mean"] - gc2l["err_mean"]
        side = "below" if lead >= 0 else "above"
        out.append(dict(target=target, met=lead > 2 * noise,
                        detail=f"GC-2L's error is {abs(lead):.2f} points {side} GC's (means of "
                               f"{_seeds(len(gc2l['errs']))} and {_seeds(len(gc['errs']))}); "
                               f"2σ = {2 * noise:.2f} points (σ = {noise:.2f}, pooled)"))
    return out


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def target_lines(checks: list[dict[str, Any]]) -> list[str]:
    mark = {True: "met", False: "missed", None: "not measured yet"}
    return [f"{c['target']}: {mark[c['met']]} ({c['detail']})." for c in checks]


def overall_verdict(checks: list[dict[str, Any]]) -> str:
    """One plain sentence: do the numbers support the claim, in full, in part, or not at all?"""
    done = [c for c in checks if c["holds"] is not None]
    held = [c["claim"] for c in done if c["holds"]]
    failed = [c["claim"] for c in done if not c["holds"]]
    missing = [c["claim"] for c in checks if c["holds"] is None]
    if not done:
        return "Verdict: not enough runs to test the paper's claim yet."
    if not failed:
        word = "support" if not missing else "so far support"
    else:
        word = "do not support" if not held else "partly support"
    parts = [f"{label}: {'; '.join(claims)}" for label, claims in
             (("holds", held), ("does not hold", failed), ("not yet measured", missing)) if claims]
    return f"Verdict: our numbers {word} the paper's claim ({'. '.join(parts)})."


def claim_verdict(agg: dict[str, dict[str, dict[str, Any]]],
                  baselines: tuple[str, ...] = ("shuffle", "flgc")) -> list[str]:
    """Plain statements of what the numbers say about the paper's claim (computed, not written by hand)."""
    gc, gc2l = agg.get("gc", {}), agg.get("gc2l", {})
    common = sorted(int(n) for n in gc if n in gc2l)
    if not common:
        return ["No GC/GC-2L pair has finished yet: nothing to conclude."]
    checks = claim_checks(agg, baselines)
    out = [overall_verdict(checks)]
    single = sum(len(c["errs"]) < 2 for cells in agg.values() for c in cells.values())
    if seed_noise(agg) is None:
        out[0] += " Provisional: no cell has two seeds, so no difference has been tested against the noise."
    elif single:
        total = sum(len(cells) for cells in agg.values())
        verb, their = ("has", "its") if single == 1 else ("have", "their")
        out[0] += (f" Provisional: {single} of {total} cells {verb} one seed, so {their} differences are single runs "
                   "measured against the spread of the others.")
    for c in checks:
        mark = {True: "holds", False: "does not hold", None: "not measured"}[c["holds"]]
        out.append(f"{c['claim']}: {mark} ({c['detail']}).")
    if "sc" in agg:
        sc = agg["sc"]["1"]["err_mean"]
        parts = []
        for n in common:
            e_gc, e_gc2l = gc[str(n)]["err_mean"], gc2l[str(n)]["err_mean"]
            # a share only of a loss GC has, and only where GC-2L is not behind GC
            won = (f" (GC-2L wins back {100 * recovery(sc, e_gc, e_gc2l):.0f} % of GC's gap)"
                   if sc < e_gc and e_gc2l <= e_gc else "")
            parts.append(f"N={n}: GC {e_gc - sc:+.2f}, GC-2L {e_gc2l - sc:+.2f}{won}")
        out.append(f"Error gap to SC ({sc:.2f}%) in points: {', '.join(parts)}.")
    # does the GC - GC-2L gap grow with N?
    gaps = [gc[str(n)]["err_mean"] - gc2l[str(n)]["err_mean"] for n in common]
    if len(gaps) > 1:
        grows = all(b >= a for a, b in zip(gaps, gaps[1:]))
        out.append(f"GC's excess error over GC-2L by N: {', '.join(f'{g:+.2f}' for g in gaps)} "
                   f"({'grows monotonically' if grows else 'not monotone'} with N).")
    noise = seed_noise(agg)
    if noise is not None:
        stds = seed_stds(agg)
        out.append(f"Seed-to-seed standard deviation where measured: {min(stds):.2f}–{max(stds):.2f} points "
                   f"(pooled {noise:.2f}); a difference counts as real above {2 * noise:.2f} points.")
    else:
        out.append("No cell has two seeds yet, so the noise level is unknown and no difference is tested against it.")
    return out


# The decisive study (issue 16): WRN-16-2 on all 60k training images, SC and GC/GC-2L/Shuffle at the
# large N where the paper's effect lives, 3 seeds each, one 8-epoch recipe ("fmnist8") for all.
FULL = StudyConfig(conv_types=("gc", "gc2l", "shuffle"), groups=(8, 16), seeds=(0, 1, 2), extra_seeds=(),
                   extra_seed_groups=(), epochs=8, lr=0.2, lr_milestones=(), nesterov=True, schedule="cosine",
                   warmup_epochs=1.0, train_subset=None, channels_last=True, recipe="fmnist8")
# The first study (5 epochs on a fixed 20k subset, step schedule, N = 2..16 with FLGC).
SHORT = StudyConfig()
PRESETS: dict[str, StudyConfig] = {"full": FULL, "short": SHORT}
# the targets a preset's report checks (target_checks' keywords); the short study has none
TARGETS: dict[str, dict[str, Any]] = {"full": {"sc_top1": 94.0, "groups": 16}}
