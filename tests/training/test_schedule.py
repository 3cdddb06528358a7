"""Learning-rate schedules: exact values of the per-step factor, and the trainer stepping it per batch."""
import math

import pytest
import torch

from tglc_zoo.training.schedule import build_scheduler, lr_factor


def test_step_schedule_matches_milestones_per_epoch():
    f = [lr_factor(t, steps_per_epoch=10, epochs=4, schedule="step", lr_milestones=(1, 3), lr_gamma=0.1)
         for t in range(40)]
    assert f[:10] == [1.0] * 10 and f[10:30] == [pytest.approx(0.1)] * 20 and f[30:] == [pytest.approx(0.01)] * 10


def test_cosine_with_warmup_rises_linearly_then_decays_to_zero():
    kw = dict(steps_per_epoch=10, epochs=5, schedule="cosine", warmup_epochs=1.0)
    f = [lr_factor(t, **kw) for t in range(50)]
    assert f[:10] == pytest.approx([(t + 1) / 10 for t in range(10)])
    assert f[10] == 1.0 and f[30] == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 40)))
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.002


def test_unknown_schedule_names_choices():
    with pytest.raises(ValueError, match=r"schedule='linear'.*\['step', 'cosine'\]"):
        lr_factor(0, steps_per_epoch=1, epochs=1, schedule="linear")


def test_scheduler_sets_optimizer_lr_each_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    sched = build_scheduler(opt, steps_per_epoch=4, epochs=2, schedule="cosine", warmup_epochs=0.5)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[:4] == pytest.approx([0.1, 0.2, 0.2, 0.2 * 0.5 * (1 + math.cos(math.pi * 1 / 6))])
