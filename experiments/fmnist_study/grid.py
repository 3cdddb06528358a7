"""The study's grid: which runs it trains (SC, and GC/GC-2L/Shuffle/FLGC at each N, each for one or more
seeds) and the one recipe that every run of it shares.

A study is a grid of training runs (the paper's Tables 1/3, Figures 4/5: test error against the number
of groups N for every conv type). Running it is ``run.py``; its records are ``records.py``; the cells
they make are ``cells.py``; the claim and the targets are checked in ``claims.py`` and ``targets.py``,
put into words in ``verdict.py``, drawn in ``plots.py`` and written out in ``report.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        """The config that ``to_dict`` wrote (JSON lists back to tuples)."""
        tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        values: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**values)

    def recipe_text(self) -> str:
        """The recipe in one line, as a shipped tag's manifest entry and model card state it."""
        images = f"a fixed {self.train_subset:,}-image subset of the" if self.train_subset else "all 60,000"
        if self.schedule == "cosine":
            sched = f"lr {self.lr} cosine decay to 0 after {self.warmup_epochs:g} epoch(s) of linear warm-up"
        else:
            sched = f"lr {self.lr} x{self.lr_gamma} at epochs {list(self.lr_milestones)}"
        return (f"{self.arch}, {self.epochs} epochs on {images} Fashion-MNIST training images, "
                f"SGD{' (Nesterov)' if self.nesterov else ''} momentum {self.momentum}, weight decay "
                f"{self.weight_decay}, batch {self.batch_size}, {sched}, pad-2 random crop + horizontal flip, He init "
                f"(recipe '{self.recipe}'); python -m experiments.fmnist_study")
