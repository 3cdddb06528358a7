"""End to end, as a user of the wheel: `python -m build`, a fresh virtual environment, and every shipped tag
loaded through tglc_zoo and timm from a local Hugging Face endpoint (HF_ENDPOINT) — the wheel holds no
weights. The loaded models' outputs must be identical to the clone's."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import tglc_zoo
from tglc_zoo.weights import load_manifest

REPO = Path(__file__).resolve().parents[2]
TAGS = tglc_zoo.list_models(pretrained=True)

CHILD = r"""
import sys, torch, timm, tglc_zoo
tags = sys.argv[1].split(",")
out = {"file": tglc_zoo.__file__, "listed": tglc_zoo.list_models(pretrained=True)}
for tag in tags:
    repo = timm.models.get_pretrained_cfg(tag).hf_hub_id
    models = {"tglc_zoo.create_model": tglc_zoo.create_model(tag, pretrained=True),
              "timm.create_model": timm.create_model(tag, pretrained=True),
              "tglc_zoo.from_pretrained": tglc_zoo.from_pretrained(repo),
              "timm hf-hub:": timm.create_model("hf-hub:" + repo, pretrained=True)}
    for route, m in models.items():
        c, h, w = m.pretrained_cfg["input_size"]
        x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out[(tag, route)] = m.eval()(x)
torch.save(out, sys.argv[2])
"""


@pytest.mark.slow
@pytest.mark.skipif(not TAGS, reason="no shipped tags")
def test_wheel_in_a_fresh_venv_loads_every_tag_from_the_hub(tmp_path, local_hub):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "runs", "data", "build", "dist", "__pycache__",
                                                             "*.egg-info", ".hypothesis"))
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                            str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("tglc_zoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".safetensors", ".pt", ".pth", ".bin"))]
    assert {n.split("/")[0] for n in names} <= {"tglc_zoo", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                                                + ".dist-info"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # --ignore-installed: the venv sees the system site-packages, which may hold an (editable) tglc_zoo already
    inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-3000:]
    entries = load_manifest()
    for tag in TAGS:
        local_hub.serve_folder(entries[tag]["hf_hub_id"], Path(entries[tag]["file"]))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HF_ENDPOINT": local_hub.endpoint,
           "HF_HOME": str(tmp_path / "hf-home-child"), "TORCH_HOME": str(tmp_path / "torch-home"),
           "OMP_NUM_THREADS": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    run = subprocess.run([str(py), "-c", CHILD, ",".join(TAGS), str(tmp_path / "out.pt")], cwd=work, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    assert got["file"].startswith(str(venv)) and sorted(got["listed"]) == sorted(TAGS)
    for tag in TAGS:
        ref = tglc_zoo.create_model(tag, pretrained=True).eval()  # the clone: its hub/ mirror
        c, h, w = ref.pretrained_cfg["input_size"]
        x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            want = ref(x)
        for route in ("tglc_zoo.create_model", "timm.create_model", "tglc_zoo.from_pretrained", "timm hf-hub:"):
            assert torch.equal(got[(tag, route)], want), (tag, route)
    downloaded = list((tmp_path / "hf-home-child").rglob("snapshots/*/model.safetensors"))
    assert len(downloaded) == len(TAGS)
