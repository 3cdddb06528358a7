"""Ship a study's checkpoints as pretrained tags: a folder under ``hub/`` plus a manifest entry.

For each shipped cell (SC, and every conv type at the chosen N) one finished seed is published
(``tglc_zoo.training.publish_run``) to ``hub/<model>.<tag>``: the *median* seed by final test error
(``select="median"``; the first study shipped the best). It is recorded in the package's weights
manifest with its sha256, its measured top-1, its Hub repo (``<hub_org>/<model>.<tag>``) and the
cell's mean ± std over seeds, which its model card states beside the tag's own top-1.

The study defines the shipped set: with ``prune=True`` every other ``<model>.<tag>`` of the same dataset
(a cell the study no longer ships, such as the first study's N = 4 and FLGC tags) leaves the manifest
and ``hub/``. A run is republished when its cell's selection changes or when the shipped weights came
from another recipe (two studies name their runs alike).
"""
from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tglc_zoo.weights
from tglc_zoo.checkpoint.config import CONFIG_NAME
from tglc_zoo.checkpoint.model_card import CARD_NAME, render_model_card
from tglc_zoo.checkpoint.safetensors_io import WEIGHTS_NAME, read_header
from tglc_zoo.util.atomic import atomic_write, atomic_write_json
from tglc_zoo.util.hashing import sha256_file
from tglc_zoo.weights import MANIFEST

from .records import RunRecord

_CFG_KEYS = ("input_size", "mean", "std", "num_classes", "label_names", "crop_pct", "interpolation")
MANIFEST_PATH = Path(tglc_zoo.weights.__file__).resolve().parent / MANIFEST
SELECTIONS = ("median", "best")


def select_per_cell(records: Iterable[RunRecord], cells: set[tuple[str, int]], rule: str = "median"
                    ) -> dict[tuple[str, int], tuple[RunRecord, list[RunRecord]]]:
    """``{cell: (chosen record, all records of the cell)}``: the median seed by test error (the lower of the
    two middle ones for an even count), or the best."""
    if rule not in SELECTIONS:
        raise ValueError(f"unknown selection {rule!r}; valid choices: {list(SELECTIONS)}")
    by_cell: dict[tuple[str, int], list[RunRecord]] = {}
    for r in records:
        key = (r.conv_type, r.groups)
        if key in cells:
            by_cell.setdefault(key, []).append(r)
    out = {}
    for key, rs in by_cell.items():
        ranked = sorted(rs, key=lambda r: (r.test_err, r.seed))
        out[key] = (ranked[(len(ranked) - 1) // 2] if rule == "median" else ranked[0], rs)
    return out


def cell_stats(records: list[RunRecord]) -> dict[str, Any]:
    top1 = [100.0 * r.test_acc for r in records]
    return {"seeds": sorted(r.seed for r in records), "top1_mean": round(statistics.fmean(top1), 2),
            "top1_std": round(statistics.stdev(top1), 2) if len(top1) > 1 else 0.0}


def write_card(folder: Path, name: str, entry: dict[str, Any], dataset_name: str) -> None:
    """The shipped folder's model card, for the Hub: the tag's metrics, the cell's spread, the recipe."""
    config = json.loads((folder / CONFIG_NAME).read_text())
    cell = entry.get("cell") or {}
    if not cell:
        spread = ""
    elif len(cell["seeds"]) == 1:
        spread = (f" It is its cell's only finished seed so far (run `{entry['run_id']}`), so the cell's seed spread "
                  "is not known yet.")
    else:
        spread = (f" Its cell ({len(cell['seeds'])} seeds: {cell['seeds']}) has top-1 {cell['top1_mean']:.2f} ± "
                  f"{cell['top1_std']:.2f} % (mean ± std); this is its {entry.get('selected', 'chosen')} seed, "
                  f"run `{entry['run_id']}`.")
    description = (f"`{name}`: {config['architecture']} trained on {dataset_name} by tglc_zoo's Fashion-MNIST study; "
                   f"top-1 {entry['metrics']['top1']:.2f} % on the full test set.{spread} Home: "
                   f"[{entry['hf_hub_id']}](https://huggingface.co/{entry['hf_hub_id']}).")
    num_params = sum(_numel(info.shape) for k, info in read_header(folder / WEIGHTS_NAME).tensors.items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))  # parameters only
    card = render_model_card(config, metrics={"top1": entry["metrics"]["top1"]}, dataset=entry["dataset"],
                             dataset_name=dataset_name, num_params=num_params, recipe=entry["recipe"],
                             description=description, model_name=name, tags=["fashion-mnist"])
    atomic_write(folder / CARD_NAME, card)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def needs_publish(entry: dict[str, Any] | None, rec: RunRecord, recipe: str, folder: Path) -> bool:
    """Whether ``rec``'s weights must be (re)published over the manifest ``entry`` shipped in ``folder``."""
    return (entry is None or entry.get("run_id") != rec.run_id or entry.get("recipe") != recipe
            or not (folder / WEIGHTS_NAME).is_file())


def prune_tags(weights: dict[str, Any], keep: set[str], *, tag: str, dataset: str, repo_root: Path,
               log: Callable[[str], None] = print) -> list[str]:
    """Remove every ``<model>.<tag>`` entry of ``dataset`` not in ``keep`` from ``weights`` (in place), and
    its folder if it lies under ``repo_root/hub``; returns the removed names. Other tags and datasets stay."""
    hub = (repo_root / "hub").resolve()
    removed = []
    for name in sorted(weights):
        entry = weights[name]
        if not name.endswith(f".{tag}") or entry.get("dataset") != dataset or name in keep:
            continue
        folder = (repo_root / entry["file"]).resolve() if entry.get("file") else None
        if folder is not None and folder.parent == hub and folder.is_dir():
            shutil.rmtree(folder)
        del weights[name]
        removed.append(name)
        log(f"[ship] {name}: no longer shipped by this study; removed from the manifest"
            + (f" and {folder}" if folder is not None and folder.parent == hub else ""))
    return removed


def ship(records: list[RunRecord], cells: set[tuple[str, int]], study_dir: Path, repo_root: Path, *,
         tag: str, dataset: str, dataset_name: str, recipe: str, select: str = "median",
         manifest_path: Path = MANIFEST_PATH, prune: bool = False, log: Callable[[str], None] = print
         ) -> list[str]:
    """Publish the selected run of every cell whose checkpoint exists; returns the tags (re)shipped.

    A cell whose selected run is already shipped (same run, same recipe) keeps its weights; its manifest
    entry and card are refreshed (the cell's spread changes as seeds finish). ``prune`` removes the
    other tags of this ``tag`` and ``dataset`` (see ``prune_tags``).
    """
    from tglc_zoo.training.publish import publish_run

    manifest = json.loads(manifest_path.read_text())
    weights = manifest.setdefault("weights", {})
    org = manifest.get("hub_org", "tglc-zoo")
    shipped = []
    selected = select_per_cell(records, cells, select)
    if prune:
        prune_tags(weights, {f"{rec.model}.{tag}" for rec, _ in selected.values()}, tag=tag, dataset=dataset,
                   repo_root=repo_root, log=log)
        atomic_write_json(manifest_path, manifest)
    for (_conv_type, _n), (rec, cell) in sorted(selected.items()):
        name = f"{rec.model}.{tag}"
        folder = repo_root / "hub" / name
        if needs_publish(weights.get(name), rec, recipe, folder):
            run_dir = study_dir / "runs" / rec.run_id
            if not (run_dir / "checkpoints" / "last.pt").is_file():
                log(f"[ship] {name}: run {rec.run_id} has no checkpoint in {run_dir}; not shipped")
                continue
            publish_run(run_dir, folder, which="last")
            shipped.append(name)
        pcfg = json.loads((folder / CONFIG_NAME).read_text())["pretrained_cfg"]
        weights[name] = {
            "file": str(folder.relative_to(repo_root)),
            "hf_hub_id": f"{org}/{name}",
            "sha256": sha256_file(folder / WEIGHTS_NAME),
            "dataset": dataset,
            "metrics": {"top1": round(100.0 * rec.test_acc, 2), "top1_err": round(100.0 * rec.test_err, 2)},
            "recipe": recipe,
            "run_id": rec.run_id,
            "selected": select,
            "cell": cell_stats(cell),
            "pretrained_cfg": {k: pcfg[k] for k in _CFG_KEYS if k in pcfg},
        }
        write_card(folder, name, weights[name], dataset_name)
        atomic_write_json(manifest_path, manifest)
        log(f"[ship] {name}: top-1 {weights[name]['metrics']['top1']:.2f}% from {rec.run_id} ({select} of "
            f"{len(cell)}) -> {folder}")
    return shipped
