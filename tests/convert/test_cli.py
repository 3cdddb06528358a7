"""scripts/convert.py: dense checkpoint in, converted checkpoint folder out (loadable, same outputs)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from convert_helpers import images, randomize

import tglc_zoo
from tglc_zoo.convert import to_grouped

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "convert.py"


@pytest.fixture(scope="module")
def cli():
    spec = importlib.util.spec_from_file_location("convert_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    model = randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))
    return model, tglc_zoo.save_pretrained(model, tmp_path_factory.mktemp("src") / "sc")


def test_converts_a_checkpoint_folder(cli, source, tmp_path, capsys):
    model, folder = source
    out, report = tmp_path / "gc2l", tmp_path / "report.json"
    args = [str(folder), "--groups", "2", "--output", str(out), "--report", str(report), "--threads", "1"]
    assert cli.main(args) == 0
    loaded = tglc_zoo.from_pretrained(out).eval()
    expected = to_grouped(model, "gc2l", 2, "optimal")
    assert loaded.pretrained_cfg["architecture"] == "wrn16_2_gc2l_n2"
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected(x))
    rows = json.loads(report.read_text())
    assert len(rows) == len(expected.conversion_report)
    assert all(r["relative_error"] < r["relative_block_jacobi_error"] for r in rows)
    assert "wrn16_2_gc2l_n2" in capsys.readouterr().out
    assert "Converted without training" in (out / "README.md").read_text()


def test_calibrated_on_a_dataset(cli, source, tmp_path):
    out = tmp_path / "calibrated"
    assert cli.main([str(source[1]), "--groups", "2", "--calibrate", "digits", "--calib-images", "16",
                     "--max-iter", "1", "--output", str(out), "--threads", "1"]) == 0
    assert tglc_zoo.from_pretrained(out).model_args["groups"] == 2


def test_bad_requests_fail_with_a_message(cli, source, tmp_path, capsys):
    assert cli.main([str(source[1]), "--groups", "3", "--output", str(tmp_path / "x")]) == 2
    assert "groups=3 does not divide" in capsys.readouterr().err
    assert cli.main([str(source[1]), "--groups", "2", "--method", "block_jacobi", "--calibrate", "digits",
                     "--output", str(tmp_path / "y")]) == 2
    assert "--calibrate needs --method optimal" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
