"""The README's main job, shrunk: train, publish, reload through torch.hub and from_pretrained."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_main_job_small(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "experiments.main_job", "--dataset", "digits",
                          "--model", "wrn16_2_gc2l_n2", "--compare", "wrn16_2_gc_n2", "--train-subset", "256",
                          "--epochs", "1", "--lr-milestones", "", "--threads", "1", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["model"] for r in summary["results"]] == ["wrn16_2_gc2l_n2", "wrn16_2_gc_n2"]
    for r in summary["results"]:
        assert r["test_acc_torch_hub"] == r["test_acc_trained"] == r["test_acc_from_pretrained"]
        assert (Path(r["published"]) / "model.safetensors").is_file()
    assert summary["test_samples"] == 360 and (tmp_path / "curves.png").is_file()
    assert "wrn16_2_gc2l_n2" in out.stdout and "test acc" in out.stdout
