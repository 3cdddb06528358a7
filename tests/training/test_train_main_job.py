"""The README's main job, shrunk: SC, GC and GC-2L trained, published, reloaded through torch.hub and
from_pretrained, with the recovered share of GC's loss stated next to the study's seed spread."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.main_job import recovery, study_spread

REPO = Path(__file__).resolve().parents[2]


def test_main_job_small(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "experiments.main_job", "--dataset", "digits", "--groups", "2",
                          "--train-subset", "256", "--epochs", "1", "--threads", "1", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["model"] for r in summary["results"]] == ["wrn16_2", "wrn16_2_gc_n2", "wrn16_2_gc2l_n2"]
    for r in summary["results"]:
        assert r["reloaded_identical"] and (Path(r["published"]) / "model.safetensors").is_file()
    sc, gc, gc2l = (r["test_acc"] for r in summary["results"])
    assert summary["gc_loss_points"] == pytest.approx(100 * (sc - gc))
    assert summary["test_samples"] == 360 and (tmp_path / "main_job.png").stat().st_size > 0
    assert "identical logits to the trained model" in out.stdout and "seed" in out.stdout
    assert ("of GC's loss" in out.stdout) or ("GC lost nothing" in out.stdout)
    # one epoch against the study's 8-epoch runs: the study's spread is stated as a lower bound for this job
    assert summary["study_epochs"] > 1 and "lower bound" in out.stdout


def test_recovery_share_and_study_spread() -> None:
    assert recovery(0.90, 0.80, 0.85) == pytest.approx(0.5)
    assert recovery(0.9, 0.9, 0.95) is None
    spread, source, epochs = study_spread()
    assert spread is not None and spread > 0 and "results.json" in source
    assert epochs == json.loads((REPO / source.split(" ")[0]).read_text())["study"]["epochs"]
