"""Ship a study's best checkpoints as pretrained tags: a folder under ``hub/`` plus a manifest entry.

For each shipped cell (SC, and every conv type at the chosen N) the finished seed with the lowest
final test error is published (``tglc_zoo.training.publish_run``) to ``hub/<model>.<tag>`` and
recorded in the package's weights manifest with its sha256 and its measured top-1.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tglc_zoo.weights
from tglc_zoo.checkpoint.config import CONFIG_NAME
from tglc_zoo.checkpoint.safetensors_io import WEIGHTS_NAME
from tglc_zoo.util.atomic import atomic_write_json
from tglc_zoo.util.hashing import sha256_file
from tglc_zoo.weights import MANIFEST

_CFG_KEYS = ("input_size", "mean", "std", "num_classes", "label_names", "crop_pct", "interpolation")
MANIFEST_PATH = Path(tglc_zoo.weights.__file__).resolve().parent / MANIFEST


def best_per_cell(records: Iterable[dict[str, Any]], cells: set[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    best: dict[tuple[str, int], dict] = {}
    for r in records:
        key = (r["conv_type"], r["groups"])
        if key in cells and (key not in best or r["test_err"] < best[key]["test_err"]):
            best[key] = r
    return best


def ship(records: list[dict[str, Any]], cells: set[tuple[str, int]], study_dir: Path, repo_root: Path, *,
         tag: str, dataset: str, recipe: str, manifest_path: Path = MANIFEST_PATH,
         log: Callable[[str], None] = print) -> list[str]:
    """Publish the best run of every cell whose checkpoint exists; returns the tags (re)shipped."""
    from tglc_zoo.training.publish import publish_run

    manifest = json.loads(manifest_path.read_text())
    weights = manifest.setdefault("weights", {})
    shipped = []
    for (_conv_type, _n), rec in sorted(best_per_cell(records, cells).items()):
        name = f"{rec['model']}.{tag}"
        if weights.get(name, {}).get("run_id") == rec["run_id"]:
            continue  # already the best
        run_dir = study_dir / "runs" / rec["run_id"]
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            log(f"[ship] {name}: best run {rec['run_id']} has no checkpoint in {run_dir}; not shipped")
            continue
        folder = repo_root / "hub" / name
        publish_run(run_dir, folder, which="last")
        config = json.loads((folder / CONFIG_NAME).read_text())
        pcfg = config["pretrained_cfg"]
        weights[name] = {
            "file": str(folder.relative_to(repo_root)),
            "sha256": sha256_file(folder / WEIGHTS_NAME),
            "dataset": dataset,
            "metrics": {"top1": round(100.0 * rec["test_acc"], 2), "top1_err": round(100.0 * rec["test_err"], 2)},
            "recipe": recipe,
            "run_id": rec["run_id"],
            "pretrained_cfg": {k: pcfg[k] for k in _CFG_KEYS if k in pcfg},
        }
        atomic_write_json(manifest_path, manifest)
        shipped.append(name)
        log(f"[ship] {name}: top-1 {weights[name]['metrics']['top1']:.2f}% from {rec['run_id']} -> {folder}")
    return shipped
