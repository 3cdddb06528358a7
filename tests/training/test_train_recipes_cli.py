"""Recipes equal the paper's numbers; the CLI and the paper-table launchers parse what they promise."""
from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tglc_zoo.paper import paper_tables
from tglc_zoo.training import RECIPES, TrainConfig, get_recipe
from tglc_zoo.training.cli import build_parser, config_from_args, main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["cifar", "imagenet"])
def test_paper_recipes_match_tables(name: str) -> None:
    paper, ours = paper_tables()["training_recipes"][name], get_recipe(name)  # the tables the package ships
    assert paper["optimizer"] == "SGD"  # the trainer's optimizer
    for key in ("momentum", "weight_decay", "batch_size", "epochs", "lr", "lr_gamma"):
        assert getattr(ours, key) == paper[key], key
    assert list(ours.lr_milestones) == paper["lr_milestones"]
    assert ours.augmentation.startswith(paper["augmentation"][:20])


def test_fmnist_recipe_and_overrides() -> None:
    r = RECIPES["fmnist"]
    assert (r.momentum, r.lr, r.batch_size, r.schedule) == (0.9, 0.1, 128, "step")
    assert r.epochs == 30 and r.lr_milestones == (15, 25)
    cfg = TrainConfig(model="wrn16_2", dataset="cifar10", output="x", epochs=3, lr=0.05, lr_milestones=[1, 2])
    got = cfg.resolved_recipe()
    assert (got.name, got.epochs, got.lr, got.lr_milestones, got.weight_decay) == ("cifar", 3, 0.05, (1, 2), 5e-4)
    with pytest.raises(ValueError, match="unknown recipe 'cifr'.*did you mean 'cifar'"):
        get_recipe("cifr")
    with pytest.raises(ValueError, match="amp='fp8'"):
        TrainConfig(model="wrn16_2", dataset="digits", output="x", amp="fp8")


def test_cli_maps_every_option() -> None:
    parser = build_parser()
    args = parser.parse_args(["--model", "wrn16_4", "--conv-type", "gc2l", "--groups", "4", "--dataset", "fmnist",
                              "--data-dir", "/d", "--recipe", "cifar", "--epochs", "5", "--batch-size", "64",
                              "--lr", "0.2", "--lr-milestones", "2,4", "--output", "o", "--publish", "p", "--seed", "7",
                              "--device", "cpu", "--amp", "bf16", "--channels-last", "--compile", "--workers", "2",
                              "--limit-train-batches", "3", "--limit-val-batches", "2", "--train-subset", "100"])
    cfg = config_from_args(args, parser)
    assert cfg.model_overrides() == {"conv_type": "gc2l", "groups": 4}
    got = (cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_milestones, cfg.amp, cfg.workers)
    assert got == (5, 64, 0.2, [2, 4], "bf16", 2)
    assert cfg.channels_last and cfg.compile and cfg.limit_train_batches == 3 and cfg.train_subset == 100
    bare = parser.parse_args(["--resume", "runs/x/checkpoints/last.pt"])
    assert config_from_args(bare, parser).output == "runs/x"


def test_cli_errors_are_short_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "wrn16_2", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--output",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cifar10 data not found" in err and str(tmp_path) in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["--dataset", "digits"])  # no --model
    assert "--model and --dataset are required" in capsys.readouterr().err


@pytest.mark.parametrize("script,count", [("table1_3", 51), ("table2", 9), ("table4", 13)])
def test_reproduction_dry_run(script: str, count: int, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(f"experiments.paper_tables.{script}")
    from experiments.paper_tables.launch import common_parser
    from experiments.paper_tables.launch import main as launch

    parser = common_parser("test")
    for opt in ("--cifar10-dir", "--cifar100-dir", "--imagenet-dir"):
        parser.add_argument(opt, default="data/x")
    assert launch(script, module.build, parser, ["--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert len(commands) == count and f"# all {count} commands parse" in out
    assert all("scripts/train.py" in c and "--publish" in c for c in commands)
    assert all(shlex.split(c)[:2] in (["python", "scripts/train.py"], ["python", "-m"]) for c in commands)


def test_reproduction_script_runs_as_a_program() -> None:
    out = subprocess.run([sys.executable, "-m", "experiments.paper_tables.table2", "--dry-run"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "--group-parallel" in out.stdout and "# all 9 commands parse" in out.stdout
