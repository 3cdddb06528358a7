"""Pretrained tags from a weights manifest, in a fresh process (the manifest is read at import).

The test saves a model itself and describes it in a temporary manifest named by
TGLC_ZOO_WEIGHTS_MANIFEST; the shipped manifest holds only real, measured checkpoints.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from ckpt_helpers import grey, make_model
from safetensors.torch import load_file, save_file

import tglc_zoo
from tglc_zoo.util.hashing import sha256_file

REPO = Path(tglc_zoo.__file__).resolve().parents[1]
TAG = "wrn16_2_gc2l_n2.unittest"

_CHILD = textwrap.dedent("""
    import json, sys, timm, torch
    from safetensors.torch import load_file
    import tglc_zoo
    from tglc_zoo.checkpoint import HashMismatchError
    ref = load_file(sys.argv[1])
    x, y = ref["x"], ref["y"]
    out = {}
    def same(m):
        with torch.no_grad():
            return bool(torch.equal(m.eval()(x), y))
    from pathlib import Path
    shipped = set(json.loads((Path(tglc_zoo.__file__).parent / "weights" / "manifest.json").read_text())["weights"])
    out["listed"] = sorted(set(tglc_zoo.list_models(pretrained=True)) - shipped)  # this test's own tags
    out["tag"] = same(tglc_zoo.create_model("wrn16_2_gc2l_n2.unittest", pretrained=True))
    out["default_tag"] = same(tglc_zoo.create_model("wrn16_2_gc2l_n2", pretrained=True))
    out["tag_arg"] = same(tglc_zoo.create_model("wrn16_2_gc2l_n2", pretrained="unittest"))
    out["timm"] = same(timm.create_model("wrn16_2_gc2l_n2.unittest", pretrained=True))
    out["from_pretrained"] = same(tglc_zoo.from_pretrained("wrn16_2_gc2l_n2.unittest"))
    out["hub"] = same(torch.hub.load(sys.argv[2], "wrn16_2_gc2l_n2", source="local", pretrained=True))
    m = tglc_zoo.create_model("wrn16_2_gc2l_n2.unittest", pretrained=True, num_classes=6)
    out["adapted"] = [m.num_classes, m.pretrained_cfg["label_names"], m.pretrained_cfg["input_size"]]
    out["metrics"] = tglc_zoo.pretrained_metrics("wrn16_2_gc2l_n2.unittest")
    try:
        tglc_zoo.create_model("wrn16_2_gc_n2.badhash", pretrained=True)
        out["badhash"] = "loaded"
    except HashMismatchError as e:
        out["badhash"] = str(e)
    try:
        tglc_zoo.pretrained_metrics("wrn16_2.nothere")
    except ValueError as e:
        out["unknown"] = str(e)
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    model = make_model("wrn16_2_gc2l_n2")
    model.pretrained_cfg = {**model.pretrained_cfg, "label_names": ["cat", "dog", "emu"],
                            "input_size": (1, 12, 12)}
    tglc_zoo.save_pretrained(model, root / "weights" / TAG, metrics={"top1": 33.3}, dataset="synthetic")
    other = tglc_zoo.save_pretrained(make_model("wrn16_2_gc_n2"), root / "weights" / "other")
    x = grey()
    with torch.no_grad():
        save_file({"x": x, "y": model(x)}, root / "ref.safetensors")
    sha = sha256_file(root / "weights" / TAG / "model.safetensors")
    common = dict(dataset="synthetic", recipe="made by the test", metrics={"top1": 33.3})
    pcfg = {k: v for k, v in tglc_zoo.checkpoint.read_config(root / "weights" / TAG / "config.json")["pretrained_cfg"]
            .items() if k != "architecture"}
    entries = {
        TAG: dict(common, file=f"weights/{TAG}", sha256=sha, pretrained_cfg=pcfg),
        "wrn16_2_gc_n2.badhash": dict(common, file="weights/other", sha256="0" * 64, pretrained_cfg={}),
        "wrn16_2.absent": dict(common, file="weights/absent", sha256=sha, pretrained_cfg={}),
    }
    (root / "manifest.json").write_text(json.dumps({"format": 1, "weights": entries}))
    assert other.is_dir()
    return root


def test_manifest_tags_in_a_fresh_process(manifest):
    env = dict(os.environ, TGLC_ZOO_WEIGHTS_MANIFEST=str(manifest / "manifest.json"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(manifest / "ref.safetensors"), str(REPO)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=str(manifest))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert sorted(out["listed"]) == sorted(["wrn16_2_gc_n2.badhash", TAG])  # the absent file is not listed
    for route in ("tag", "default_tag", "tag_arg", "timm", "from_pretrained", "hub"):
        assert out[route] is True, route
    assert out["adapted"] == [6, ["cat", "dog", "emu"], [1, 12, 12]]
    assert out["metrics"] == {"top1": 33.3}
    assert "expected sha256" in out["badhash"] and "0000" in out["badhash"]
    assert "wrn16_2.nothere" in out["unknown"] and TAG in out["unknown"]


def test_shipped_manifest_is_well_formed():
    from tglc_zoo.weights import load_manifest

    entries = load_manifest(include_unavailable=True)
    for tag, entry in entries.items():
        assert tglc_zoo.is_model(tag), tag
        assert entry["metrics"] and entry["sha256"], tag
    listed = tglc_zoo.list_models(pretrained=True)
    assert set(listed) <= set(entries)
    for tag in listed:
        assert tglc_zoo.pretrained_metrics(tag) == entries[tag]["metrics"]


def test_unknown_tag_errors():
    with pytest.raises(ValueError, match="unknown pretrained tag 'nope'"):
        tglc_zoo.create_model("wrn16_2.nope", pretrained=True)
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        tglc_zoo.pretrained_metrics("wrn16_2.nope")


def test_reference_file_is_what_the_child_compares(manifest):
    ref = load_file(manifest / "ref.safetensors")
    assert ref["y"].shape == (2, 3) and ref["y"].abs().sum() > 0
