"""The configuration of one training run: one dataclass, from which the CLI and the resume rules derive.

Every field of :class:`TrainConfig` carries its CLI help in its metadata, and says whether it is a
*runtime* setting (it does not change the arithmetic of the run, so a resumed run may change it:
where files go, devices, progress bars) or part of what the run computes (a resumed run keeps it;
asking for another value is an error).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data import DATASETS, get_dataset_info
from .recipes import Recipe, get_recipe
from .schedule import SCHEDULES

__all__ = ["TrainConfig", "AMP_CHOICES", "RECIPE_FIELDS", "runtime_fields"]

AMP_CHOICES = ("bf16", "fp16")
# TrainConfig fields that override the recipe of the same name
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "lr_milestones", "lr_gamma", "nesterov",
                 "schedule", "warmup_epochs")


def _f(default: Any = None, help: str = "", *, group: str = "run", runtime: bool = False,
       choices: tuple[str, ...] | None = None, flag: str | None = None, factory: Any = None) -> Any:
    meta = dict(help=help, group=group, runtime=runtime, choices=choices, flag=flag)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that decides a run. ``None`` hyper-parameters come from the recipe.

    ``batch_size`` is the *global* batch (split evenly over data-parallel ranks, then into
    ``grad_accum`` micro-batches per rank).
    """

    model: str = _f("", "registered model name (see tglc_zoo.list_models()); required unless --resume",
                    group="what")
    dataset: str = _f("", "dataset; required unless --resume", group="what",
                      choices=tuple(DATASETS))
    output: str = _f("", "run folder (default runs/<model>-<dataset>)", runtime=True)
    data_dir: str | None = _f(None, "dataset location (cifar/imagenet: required; fmnist: default $TGLC_FMNIST_DIR, "
                                    "then /usr/share/datasets/fashion-mnist)", group="what", runtime=True)
    download: bool = _f(False, "download CIFAR with torchvision (needs a network)", group="what", runtime=True)
    recipe: str | None = _f(None, "named recipe (default: the dataset's)", group="recipe")
    epochs: int | None = _f(None, "training epochs", group="recipe")
    batch_size: int | None = _f(None, "global batch size (all processes together)", group="recipe")
    lr: float | None = _f(None, "base learning rate", group="recipe")
    momentum: float | None = _f(None, "SGD momentum", group="recipe")
    weight_decay: float | None = _f(None, "weight decay", group="recipe")
    lr_milestones: list[int] | None = _f(None, "epochs at which lr is multiplied by --lr-gamma, e.g. 60,120,160 "
                                               "(step schedule)", group="recipe")
    lr_gamma: float | None = _f(None, "lr factor at each milestone", group="recipe")
    nesterov: bool | None = _f(None, "Nesterov momentum", group="recipe")
    schedule: str | None = _f(None, "step (x lr-gamma at milestones) or cosine (to 0)", group="recipe",
                              choices=SCHEDULES)
    warmup_epochs: float | None = _f(None, "linear warm-up over this many epochs", group="recipe")
    conv_type: str | None = _f(None, "override the model's conv type (sc, gc, gc2l, shuffle, flgc)", group="what")
    groups: int | None = _f(None, "override the number of groups N", group="what")
    drop_rate: float | None = _f(None, "dropout before the classifier", group="what")
    model_kwargs: dict[str, Any] = _f(help="extra create_model kwargs as JSON", group="what", factory=dict)
    pretrained: bool = _f(False, "start from the model's pretrained weights", group="what")
    resume: str | None = _f(None, "continue a run (its folder, a checkpoint file or a sharded checkpoint folder); "
                                  "bare --resume means --output; 'auto': continue --output if it holds a "
                                  "checkpoint, else start the run (one command line for a fresh and a restarted "
                                  "run, as under torchrun --max-restarts)", runtime=True)
    checkpoint_every: int | None = _f(None, "also save a checkpoint every this many optimizer steps (besides each "
                                            "epoch's end)", runtime=True)
    keep_checkpoints: int = _f(1, "how many of the newest checkpoints to keep (the best one is kept too)",
                               runtime=True)
    dist_timeout: float = _f(600.0, "seconds a collective waits for a dead or stalled peer before the run fails "
                                    "with an error naming the collective", runtime=True)
    publish: str | None = _f(None, "publish the final checkpoint to this folder at the end", runtime=True)
    publish_which: str = _f("last", "which checkpoint --publish takes", runtime=True, choices=("last", "best"))
    push_to_hub: str | None = _f(None, "also upload the published folder to this Hub repo (needs a network)",
                                 runtime=True)
    seed: int = _f(0, "seed of weights, data order and augmentation", group="recipe")
    device: str = _f("auto", "auto, cpu, cuda, cuda:N", runtime=True)
    amp: str | None = _f(None, "mixed precision dtype", choices=AMP_CHOICES)
    channels_last: bool = _f(False, "channels_last memory format")
    compile: bool = _f(False, "torch.compile the model", runtime=True)
    autotune: bool = _f(False, "time every GC-2L implementation on this machine for each layer's input and pin the "
                               "fastest (cached per machine; also $TGLC_ZOO_AUTOTUNE=1)")
    workers: int = _f(0, "DataLoader worker processes", runtime=True)
    grad_accum: int = _f(1, "split each per-process batch into this many micro-batches", group="recipe")
    augment: bool = _f(True, "turn training augmentation off", group="what", flag="--no-augment")
    image_size: int | None = _f(None, "imagenet crop size (default 224)", group="what")
    train_subset: int | None = _f(None, "train on a fixed random subset of this many images", group="what")
    limit_train_batches: int | None = _f(None, "at most this many training steps per epoch (smoke runs)")
    limit_val_batches: int | None = _f(None, "evaluate on at most this many batches", runtime=True)
    parallel: str = _f("data", "multi-process mode (tglc_zoo.distributed.PARALLEL_MODES): data or group "
                               "(world size D x N: D replicas of an N-rank group-parallel model)", runtime=True)
    progress: bool = _f(True, "no tqdm progress bars", runtime=True, flag="--no-progress")
    tensorboard: bool = _f(True, "no TensorBoard logs (written when tensorboard is installed)", runtime=True,
                           flag="--no-tensorboard")

    def __post_init__(self) -> None:
        if self.dataset or not self.resume:  # a resumed run may leave it to the checkpoint
            get_dataset_info(self.dataset)
        if self.recipe is not None:
            get_recipe(self.recipe)
        for f in dataclasses.fields(self):
            choices, value = f.metadata["choices"], getattr(self, f.name)
            if choices and f.name != "dataset" and value is not None and value not in choices:
                raise ValueError(f"{f.name}={value!r}; valid choices: {list(choices)}")
        for name in ("epochs", "batch_size", "grad_accum", "train_subset", "limit_train_batches",
                     "limit_val_batches", "groups", "image_size", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (0 if name == "epochs" else 1)):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'epochs' else 'positive'} "
                                 f"integer, got {value!r}")
        for name in ("lr", "momentum", "weight_decay", "lr_gamma", "warmup_epochs", "drop_rate"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not (isinstance(self.dist_timeout, (int, float)) and 0 < self.dist_timeout < float("inf")):
            raise ValueError(f"dist_timeout must be a positive number of seconds, got {self.dist_timeout!r}")
        self.model_overrides()  # conflicting or unusable model options fail here, before anything is built

    def resolved_recipe(self) -> Recipe:
        """The recipe (named, or the dataset's default) with this config's overrides applied."""
        base = get_recipe(self.recipe or get_dataset_info(self.dataset).default_recipe)
        return base.replace(**{k: getattr(self, k) for k in RECIPE_FIELDS})

    def model_overrides(self) -> dict[str, Any]:
        """``create_model`` keyword arguments: ``--model-kwargs`` with ``--conv-type``/``--groups``/``--drop-rate``.

        Asking for one setting twice with two values, or for a feature extractor (which has no classifier to
        train), is an error.
        """
        out = {k: getattr(self, k) for k in ("conv_type", "groups", "drop_rate") if getattr(self, k) is not None}
        clash = [f"{k}: --model-kwargs says {self.model_kwargs[k]!r}, --{k.replace('_', '-')} says {v!r}"
                 for k, v in out.items() if k in self.model_kwargs and self.model_kwargs[k] != v]
        if clash:
            raise ValueError(f"conflicting model settings ({'; '.join(clash)}); give each one once")
        extractor = sorted(k for k in ("features_only", "out_indices", "feature_cls") if k in self.model_kwargs)
        if extractor:
            raise ValueError(f"--model-kwargs {extractor} builds a feature extractor, which has no classifier for "
                             "tglc-train to train; train the classifier, then build the backbone from its "
                             "checkpoint with create_model(..., features_only=True)")
        return {**self.model_kwargs, **out}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def runtime_fields() -> tuple[str, ...]:
    """The fields a resumed run may change (they do not change what the run computes)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["runtime"])
