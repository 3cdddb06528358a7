"""The study's two presets: the decisive study (``full``) and the first, short one, with the targets each checks."""
from __future__ import annotations

from .grid import StudyConfig
from .targets import Targets

# WRN-16-2 on all 60k training images, SC and GC/GC-2L/Shuffle at the large N where the paper's effect
# lives, 3 seeds each, one 8-epoch recipe ("fmnist8") for all.
FULL = StudyConfig(conv_types=("gc", "gc2l", "shuffle"), groups=(8, 16), seeds=(0, 1, 2), extra_seeds=(),
                   extra_seed_groups=(), epochs=8, lr=0.2, lr_milestones=(), nesterov=True, schedule="cosine",
                   warmup_epochs=1.0, train_subset=None, channels_last=True, recipe="fmnist8")
# The first study (5 epochs on a fixed 20k subset, step schedule, N = 2..16 with FLGC).
SHORT = StudyConfig()
PRESETS: dict[str, StudyConfig] = {"full": FULL, "short": SHORT}
# the targets a preset's report checks; the short study has none
TARGETS: dict[str, Targets] = {"full": Targets(sc_top1=94.0, groups=16)}
