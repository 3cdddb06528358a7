"""Training's reliability: a resumed run keeps its settings, a run never writes over a user's
files, and bad options are errors that name them (through the CLI too, without tracebacks)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tglc_zoo.training import ModelDatasetMismatchError, RunExistsError, TrainConfig, train
from tglc_zoo.training.cli import main

QUIET = dict(progress=False, tensorboard=False)
SMALL = dict(model="wrn16_2", dataset="digits", batch_size=64, limit_train_batches=2, limit_val_batches=1, **QUIET)


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cos"
    train(TrainConfig(output=str(out), epochs=2, schedule="cosine", lr=0.05, seed=3, **SMALL), log=lambda m: None)
    return out


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["config"]


@pytest.mark.parametrize("change", [dict(lr=0.5), dict(batch_size=32), dict(seed=7), dict(schedule="step"),
                                    dict(weight_decay=0.1), dict(amp="bf16")])
def test_resume_refuses_changed_settings(cosine_run, change):
    before = (cosine_run / "config.json").read_text()
    cfg = TrainConfig(model="", dataset="", output="", resume=str(cosine_run), **{**QUIET, **change})
    key = next(iter(change))
    with pytest.raises(ModelDatasetMismatchError, match=rf"other settings \({key}: .* -> "):
        train(cfg, log=lambda m: None)
    assert (cosine_run / "config.json").read_text() == before  # nothing rewritten


def test_resume_refuses_other_epochs_on_a_cosine_run_and_keeps_config(cosine_run):
    before = (cosine_run / "config.json").read_text()
    for epochs in (1, 4):
        cfg = TrainConfig(model="", dataset="", output="", resume=str(cosine_run), epochs=epochs, **QUIET)
        with pytest.raises(ModelDatasetMismatchError, match=r"--epochs .* differs from the run's 2.*cosine"):
            train(cfg, log=lambda m: None)
    assert (cosine_run / "config.json").read_text() == before and _config(cosine_run)["epochs"] == 2


def test_a_step_run_may_be_extended_not_shortened(tmp_path):
    out = tmp_path / "step"
    train(TrainConfig(output=str(out), epochs=1, lr_milestones=[5], **SMALL), log=lambda m: None)
    with pytest.raises(ModelDatasetMismatchError, match="never shortened"):
        train(TrainConfig(model="", dataset="", output="", resume=str(out), epochs=0, **QUIET), log=lambda m: None)
    result = train(TrainConfig(model="", dataset="", output="", resume=str(out), epochs=2, **QUIET),
                   log=lambda m: None)
    assert [r["epoch"] for r in result.history] == [1, 2] and _config(out)["epochs"] == 2


def test_resume_may_change_runtime_settings(cosine_run, tmp_path):
    published = tmp_path / "pub"
    train(TrainConfig(model="", dataset="", output="", resume=str(cosine_run), publish=str(published),
                      device="cpu", workers=0, **QUIET), log=lambda m: None)
    assert (published / "model.safetensors").is_file()


def test_a_run_never_writes_into_a_folder_of_other_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(RunExistsError, match=r"not a tglc-train run: \['notes.txt'\]"):
        train(TrainConfig(output=str(folder), epochs=1, **SMALL), log=lambda m: None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"mine": 1}')
    (other / "metrics.csv").write_text("a,b\n")
    with pytest.raises(RunExistsError, match="not a tglc-train run record"):
        train(TrainConfig(output=str(other), epochs=1, **SMALL), log=lambda m: None)
    assert (other / "config.json").read_text() == '{"mine": 1}' and (other / "metrics.csv").read_text() == "a,b\n"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # not even the run's lock was written
    assert sorted(p.name for p in other.iterdir()) == ["config.json", "metrics.csv"]


@pytest.mark.parametrize("args,match", [
    (["--lr", "nan"], "expected a finite number"),
    (["--lr", "inf"], "expected a finite number"),
    (["--weight-decay", "-1"], "weight_decay must be a finite non-negative number"),
    (["--output", "/etc/passwd"], "--output /etc/passwd is a file"),
    (["--epochs", "-2"], "epochs must be a non-negative integer"),
])
def test_bad_options_are_named_without_a_traceback(tmp_path, capsys, args, match):
    argv = ["--model", "wrn16_2", "--dataset", "digits", "--output", str(tmp_path / "o"), "--no-progress", *args]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse rejects unparsable values itself (exit status 2)
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert match in err
