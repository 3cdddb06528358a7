"""Turn a training run into a published checkpoint folder (the ``tglc_zoo.save_pretrained`` format)."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..data import DatasetInfo, get_dataset_info
from ..distributed.sharded_checkpoint import read_full_tensors
from ..errors import CheckpointError, CheckpointNotFoundError
from ..models._base import ZooModel
from ..pretrained import push_to_hub as upload_folder
from ..pretrained import save_pretrained
from .build import build_model_for
from .checkpoint_dir import latest_entry, load_checkpoint, resolve_resume_path
from .config import TrainConfig
from .recipes import Recipe

__all__ = ["publish_run", "model_from_checkpoint", "describe_run"]


def _dataset_info(ckpt: dict[str, Any]) -> DatasetInfo:
    saved = ckpt.get("dataset") or {}
    base = get_dataset_info(ckpt["config"]["dataset"])
    # tglc-train records num_classes (DatasetInfo.num_classes is None only before imagenet's files are read)
    return base.replace(num_classes=int(cast(int, saved.get("num_classes", base.num_classes))),
                        in_chans=int(saved.get("in_chans", base.in_chans)),
                        input_size=tuple(saved.get("input_size", base.input_size)),
                        label_names=tuple(saved.get("label_names", base.label_names)))


def model_from_checkpoint(ckpt: dict[str, Any]) -> tuple[nn.Module, DatasetInfo]:
    """Rebuild the trained model of a training checkpoint (strict weight loading), in eval mode."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    info = _dataset_info(ckpt)
    model = build_model_for(cfg.model, info, cfg.model_overrides())
    model.load_state_dict(ckpt["model"], strict=True)
    zoo = cast(ZooModel, model)  # build_model_for builds tglc_zoo models
    zoo.pretrained_cfg = {**zoo.pretrained_cfg, "label_names": list(info.label_names)}
    return model.eval(), info


def describe_run(ckpt: dict[str, Any]) -> str:
    """Markdown describing how the weights were trained (for the model card)."""
    cfg, recipe = ckpt["config"], ckpt["recipe"]
    row = ckpt["history"][-1] if ckpt["history"] else {}
    epochs_done = int(ckpt["epoch"])
    train_samples = ckpt.get("dataset", {}).get("train_samples")
    augmentation = get_dataset_info(cfg["dataset"]).augmentation if cfg.get("augment", True) else "none"
    lines = [
        f"Trained with `tglc-train` (tglc_zoo.training) on **{cfg['dataset']}**"
        + (f" ({train_samples} training images)" if train_samples else "") + ".", "",
        f"- recipe: `{recipe['name']}` ({recipe.get('source', '')}): {Recipe.from_dict(recipe).describe()}; "
        f"augmentation: {augmentation}",
        f"- epochs: {epochs_done} of {recipe['epochs']} planned"
        + (f" (at most {cfg['limit_train_batches']} batches per epoch)" if cfg.get("limit_train_batches") else ""),
        f"- seed {cfg['seed']}, AMP {cfg.get('amp') or 'off'}, channels_last {cfg.get('channels_last', False)}, "
        f"world size {ckpt.get('world_size', 1)}",
        f"- wall time (training + per-epoch evaluation): {row.get('elapsed_s', float('nan')):.1f} s",
        f"- hardware: {ckpt.get('hardware', 'unknown')}",
    ]
    if row:
        lines.append(f"- test accuracy {100 * row['test_acc']:.2f}% (error {100 * row['test_err']:.2f}%) on "
                     f"{row.get('test_samples', '?')} test images after epoch {row['epoch']}")
    return "\n".join(lines)


def publish_run(run: str | os.PathLike[str], directory: str | os.PathLike[str], *, which: str = "last",
                push_to_hub: str | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Publish a run folder (its latest or best checkpoint), a checkpoint file or a sharded checkpoint folder
    to ``directory``, as the single-process safetensors folder :func:`tglc_zoo.from_pretrained` reads.

    A sharded (group-parallel) checkpoint is converted offline here: its slices are read into the full model
    in this one process. The model card reports the test accuracy/error measured at that checkpoint's epoch,
    the dataset, recipe, epochs, wall time and hardware. ``push_to_hub`` also uploads the folder to that repo.
    """
    if which not in ("last", "best"):
        raise ValueError(f"which={which!r}; valid choices: ['last', 'best']")
    src = Path(run)
    if src.is_dir() and (src / "checkpoints").is_dir():
        found = latest_entry(src, which)
        if found is None:
            raise CheckpointNotFoundError(f"no {which} training checkpoint in {src / 'checkpoints'}")
        path = found
    elif src.exists():
        path = resolve_resume_path(src)
    else:
        raise CheckpointNotFoundError(f"no training checkpoint at {src}; pass a run folder, a checkpoint file or a "
                                      "sharded checkpoint folder")
    ckpt = load_checkpoint(path)
    if "sharded" in ckpt:
        ckpt["model"] = read_full_tensors(path, "model.")
    model, info = model_from_checkpoint(ckpt)
    if not ckpt["history"]:
        raise CheckpointError(f"{path} holds no evaluated epoch; nothing to publish")
    if ckpt.get("epoch_step"):
        raise CheckpointError(f"{path} was saved mid-epoch (step {ckpt['epoch_step']} of epoch {ckpt['epoch'] + 1}): "
                              "no test accuracy was measured for these weights; resume the run to the end of the "
                              "epoch, or publish --which best")
    row = next((r for r in ckpt["history"] if r["epoch"] == ckpt["epoch"]), ckpt["history"][-1])
    metrics = {"top1": round(100.0 * row["test_acc"], 4), "top1_err": round(100.0 * row["test_err"], 4),
               "loss": round(float(row["test_loss"]), 6)}
    with torch.no_grad():
        out_path = save_pretrained(model, directory, metrics=metrics, dataset=info.hub_id or info.name,
                                   dataset_name=info.name, recipe=describe_run(ckpt))
    if log:
        log(f"[publish] {ckpt['config']['model']} (epoch {ckpt['epoch']}, test acc {row['test_acc']:.4f}) "
            f"-> {out_path}")
    if push_to_hub:
        upload_folder(out_path, push_to_hub)  # the folder just written, card included
    return out_path

