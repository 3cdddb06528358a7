"""Each hostile folder fails in under 5 s, and the process's peak RSS grows by under 200 MB while it does.

One subprocess (so this test's own memory does not count) loads every folder of ``hostile.py`` through
every local route. Before each attempt it resets the kernel's peak-RSS counter (``/proc/self/clear_refs``)
and reads ``VmRSS``; after it, ``VmHWM`` — the peak while the attempt ran.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_SECONDS = 5.0
MAX_GROWTH_MB = 200.0

_SCRIPT = r'''
import json, re, sys, time
from pathlib import Path
import timm, torch
import tglc_zoo
from tglc_zoo.errors import TglcZooError
from hostile import ZOO_NAME, huge_config, make_all, self_referencing, write_folder, zoo

torch.set_num_threads(1)
root = Path(sys.argv[1])

def status():
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(k + r":\s+(\d+) kB", text).group(1)) / 1024 for k in ("VmRSS", "VmHWM")}

routes = {
    "from_pretrained": lambda f, **kw: tglc_zoo.from_pretrained(f, **kw),
    "tglc_zoo local-dir": lambda f, **kw: tglc_zoo.create_model(f"local-dir:{f}", pretrained=True, **kw),
    "tglc_zoo local-dir config only": lambda f, **kw: tglc_zoo.create_model(f"local-dir:{f}", **kw),
    "timm local-dir": lambda f, **kw: timm.create_model(f"local-dir:{f}", pretrained=True, **kw),
    "timm local-dir config only": lambda f, **kw: timm.create_model(f"local-dir:{f}", **kw),
}
legit = tglc_zoo.save_pretrained(tglc_zoo.create_model(ZOO_NAME, num_classes=3, in_chans=1), root / "legit")
for load in routes.values():  # warm up: lazy imports and caches are not what is measured
    load(legit)
cases = [(name, folder, {}) for name, folder in make_all(root / "h").items()]
cases += [("huge_config", huge_config(root), {}), ("self_reference", self_referencing(root), {"trust_base": True})]
for name, folder, kw in cases:
    for route, load in routes.items():
        if name == "huge_config" and route.startswith("timm"):
            continue  # timm reads config.json itself, before tglc_zoo sees the call
        before = status()["VmRSS"]
        Path("/proc/self/clear_refs").write_text("5")
        start = time.perf_counter()
        try:
            load(folder, **kw)
            error, ours = "built", False
        except Exception as e:
            error, ours = f"{type(e).__name__}: {str(e)[:160]}", isinstance(e, TglcZooError)
        seconds = time.perf_counter() - start
        print(json.dumps(dict(case=name, route=route, seconds=seconds, growth_mb=status()["VmHWM"] - before,
                              error=error, ours=ours)), flush=True)
'''


def test_each_hostile_folder_fails_fast_and_small(tmp_path):
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": str(HERE)})
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 11 * 5 - 2, out.stdout[-2000:]
    bad = [r for r in rows if not r["ours"] or r["seconds"] >= MAX_SECONDS or r["growth_mb"] >= MAX_GROWTH_MB]
    assert not bad, json.dumps(bad, indent=1)
