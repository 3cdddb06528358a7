"""hubconf.py from a fresh copy of the repository, offline: list, help and load through torch.hub."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from ckpt_helpers import grey, make_model
from safetensors.torch import save_file

import tglc_zoo

REPO = Path(tglc_zoo.__file__).resolve().parents[1]

_CHILD = textwrap.dedent("""
    import json, sys, torch
    from safetensors.torch import load_file
    clone, folder, ref = sys.argv[1:4]
    names = torch.hub.list("tglc/tglc_zoo:main", trust_repo=True, skip_validation=True, verbose=False)
    doc = torch.hub.help("tglc/tglc_zoo:main", "wrn16_4_gc2l_n4", trust_repo=True, skip_validation=True)
    model = torch.hub.load(clone, "wrn16_2_gc2l_n2", source="local", pretrained=folder).eval()
    adapted = torch.hub.load(clone, "wrn16_2_gc2l_n2", source="local", pretrained=folder, num_classes=5)
    r = load_file(ref)
    with torch.no_grad():
        same = bool(torch.equal(model(r["x"]), r["y"]))
    print("RESULT " + json.dumps(dict(names=names, doc=doc, same=same, num_classes=adapted.num_classes,
                                      package=sys.modules["tglc_zoo"].__file__)))
""")


def test_torch_hub_from_a_fresh_copy(tmp_path):
    hub_dir = tmp_path / "torch-home" / "hub"
    clone = hub_dir / "tglc_tglc_zoo_main"  # where torch.hub keeps "tglc/tglc_zoo:main" once downloaded
    clone.mkdir(parents=True)
    shutil.copy(REPO / "hubconf.py", clone)
    shutil.copytree(REPO / "tglc_zoo", clone / "tglc_zoo", ignore=shutil.ignore_patterns("__pycache__"))
    model = make_model("wrn16_2_gc2l_n2")
    folder = tglc_zoo.save_pretrained(model, tmp_path / "ckpt")
    with torch.no_grad():
        save_file({"x": grey(), "y": model(grey())}, tmp_path / "ref.safetensors")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TORCH_HOME=str(tmp_path / "torch-home"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(clone), str(folder), str(tmp_path / "ref.safetensors")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert sorted(out["names"]) == tglc_zoo.list_models()
    assert "GC2L with N=4" in out["doc"] and "pretrained" in out["doc"]
    assert out["same"] is True and out["num_classes"] == 5
    assert out["package"].startswith(str(clone))  # the copy's own package, not an installed one
