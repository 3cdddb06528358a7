"""The typed view of timm's model interface that every tglc_zoo model carries."""
from typing import Any, Protocol

from torch import nn

__all__ = ["ZooModel"]


class ZooModel(Protocol):
    """What every tglc_zoo model carries (timm's model interface), for typing code that takes any ``nn.Module``.

    :class:`~tglc_zoo.models.ClassifierModel` satisfies it; ``typing.cast(ZooModel, model)`` views a model
    built by :func:`tglc_zoo.create_model` (typed ``nn.Module``) through it. A typing aid only: nothing checks it.
    """

    pretrained_cfg: dict[str, Any]
    model_args: dict[str, Any]
    num_classes: int
    num_features: int
    head_hidden_size: int
    feature_info: list[dict[str, Any]]

    def get_classifier(self) -> nn.Module: ...
