"""Running the grid: train (or resume, or skip) one run and leave its record.

Every run lives in its own run directory under the study folder; a run that finished (its record
exists) is skipped, and one that was interrupted resumes from its last complete checkpoint, so a study
can be spread over several sessions. Run directories (checkpoints) are not committed; records are.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tglc_zoo.util.atomic import atomic_write_json

from .grid import RunSpec, StudyConfig
from .records import RunRecord, read_record, record_path


def run_one(spec: RunSpec, cfg: StudyConfig, study_dir: Path, records_dir: Path, *, progress: bool = True,
            log: Callable[[str], None] = print) -> RunRecord:
    """Train (or resume, or skip) one run and return its record."""
    from tglc_zoo.training import TrainConfig, train  # the training loop sits beside this study

    run_dir = study_dir / "runs" / spec.run_id
    result_path = record_path(records_dir, spec)
    if result_path.is_file():
        return read_record(result_path)
    resume = str(run_dir) if (run_dir / "checkpoints" / "last.pt").is_file() else None
    tcfg = TrainConfig(
        model=spec.model, dataset=cfg.dataset, data_dir=cfg.data_dir, output=str(run_dir), recipe=cfg.recipe,
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_milestones=list(cfg.lr_milestones),
        lr_gamma=cfg.lr_gamma, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=cfg.nesterov,
        schedule=cfg.schedule, warmup_epochs=cfg.warmup_epochs, seed=spec.seed,
        device=cfg.device, channels_last=cfg.channels_last, amp=cfg.amp, train_subset=cfg.train_subset,
        resume=resume, progress=progress, tensorboard=False, **cfg.extra)
    result = train(tcfg, log=log)
    final = result.final
    record = RunRecord(
        arch=spec.arch, conv_type=spec.conv_type, groups=spec.groups, seed=spec.seed, model=spec.model,
        run_id=spec.run_id, test_acc=final["test_acc"], test_err=final["test_err"], best_test_acc=result.best_acc,
        train_loss=tuple(r["train_loss"] for r in result.history),
        test_err_curve=tuple(r["test_err"] for r in result.history),
        epochs=len(result.history), train_time_s=result.wall_time_s,
        params=_count_params(spec, *_data_shape(cfg.dataset)), hardware=result.info.get("hardware", ""),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    atomic_write_json(result_path, record.to_json())
    return record


def _count_params(spec: RunSpec, in_chans: int, num_classes: int) -> int:
    import torch

    from tglc_zoo.registry import create_model

    with torch.device("meta"):
        model = create_model(spec.model, in_chans=in_chans, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def _data_shape(dataset: str) -> tuple[int, int]:
    from tglc_zoo.data import get_dataset_info

    info = get_dataset_info(dataset)
    return info.in_chans, info.num_classes or 1000
