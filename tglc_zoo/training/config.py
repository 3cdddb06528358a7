"""The configuration of one training run (what the CLI fills in)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data import get_dataset_info
from .recipes import Recipe, get_recipe
from .schedule import SCHEDULES

__all__ = ["TrainConfig", "AMP_CHOICES"]

AMP_CHOICES = ("bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything that decides a run.  ``None`` hyper-parameters come from the recipe.

    ``batch_size`` is the *global* batch (split evenly over data-parallel ranks, then into
    ``grad_accum`` micro-batches per rank).
    """

    model: str
    dataset: str
    output: str
    data_dir: str | None = None
    download: bool = False
    recipe: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    lr_milestones: list[int] | None = None
    lr_gamma: float | None = None
    nesterov: bool | None = None
    schedule: str | None = None
    warmup_epochs: float | None = None
    conv_type: str | None = None
    groups: int | None = None
    drop_rate: float | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    resume: str | None = None
    publish: str | None = None
    publish_which: str = "last"
    push_to_hub: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    workers: int = 0
    grad_accum: int = 1
    augment: bool = True
    image_size: int | None = None
    train_subset: int | None = None
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    parallel: str = "data"
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.dataset or not self.resume:  # a resumed run may leave it to the checkpoint
            get_dataset_info(self.dataset)
        if self.recipe is not None:
            get_recipe(self.recipe)
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}; valid choices: {list(SCHEDULES)}")
        if self.amp is not None and self.amp not in AMP_CHOICES:
            raise ValueError(f"amp={self.amp!r}; valid choices: {list(AMP_CHOICES)} or None")
        if self.publish_which not in ("last", "best"):
            raise ValueError(f"publish_which={self.publish_which!r}; valid choices: ['last', 'best']")
        for name in ("epochs", "batch_size", "grad_accum", "train_subset", "limit_train_batches",
                     "limit_val_batches", "groups", "image_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (0 if name == "epochs" else 1)):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'epochs' else 'positive'} "
                                 f"integer, got {value!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    def resolved_recipe(self) -> Recipe:
        """The recipe (named, or the dataset's default) with this config's overrides applied."""
        base = get_recipe(self.recipe or get_dataset_info(self.dataset).default_recipe)
        return base.replace(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                            weight_decay=self.weight_decay, lr_milestones=self.lr_milestones,
                            lr_gamma=self.lr_gamma, nesterov=self.nesterov,
                            schedule=self.schedule, warmup_epochs=self.warmup_epochs)

    def model_overrides(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("conv_type", "groups", "drop_rate") if getattr(self, k) is not None}
        return {**self.model_kwargs, **out}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
