"""The model interface shared by every family (timm's conventions)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers import CONV_SPECS, GROUPED_CONV_TYPES, check_conv_type, create_conv


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    return value


class ConvFactory:
    """Builds the replaced convolutions of one model; errors name the layer they come from."""

    def __init__(self, conv_type: str, groups: int, **conv_kwargs: Any) -> None:
        self.conv_type = check_conv_type(conv_type)
        self.groups = check_positive("groups", groups)
        if not CONV_SPECS[conv_type].grouped and groups != 1:
            raise ValueError(f"conv_type {conv_type!r} is not grouped and needs groups=1, got groups={groups}; "
                             f"valid grouped conv types: {list(GROUPED_CONV_TYPES)}")
        self.conv_kwargs = conv_kwargs

    def __call__(self, layer: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 conv_type: str | None = None) -> nn.Module:
        try:
            return create_conv(conv_type or self.conv_type, in_channels, out_channels, kernel_size, stride,
                               groups=self.groups, **self.conv_kwargs)
        except ValueError as e:
            raise ValueError(f"layer '{layer}' ({in_channels}->{out_channels} channels, "
                             f"conv_type={conv_type or self.conv_type!r}): {e}") from None


def init_weights_(model: nn.Module) -> None:
    """He init for plain convs (replaced convs initialise themselves), unit BN, small linear."""
    for m in model.modules():
        if type(m) is nn.Conv2d:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class ZooModel(Protocol):
    """What every tglc_zoo model carries (timm's model interface), for typing code that takes any ``nn.Module``.

    :class:`ClassifierModel` satisfies it; ``typing.cast(ZooModel, model)`` views a model built by
    :func:`tglc_zoo.create_model` (typed ``nn.Module``) through it. A typing aid only: nothing checks it.
    """

    pretrained_cfg: dict[str, Any]
    model_args: dict[str, Any]
    num_classes: int
    num_features: int

    def get_classifier(self) -> nn.Module: ...


class ClassifierModel(nn.Module):
    """Head, checkpointing and bookkeeping of timm's model interface.

    Subclasses build their classifier (named by ``_classifier_name``) through :meth:`_make_head`, set
    ``num_features`` and ``feature_info``, and implement :meth:`stem_forward`, :meth:`body` (the blocks,
    run in order) and :meth:`final_forward`.
    """

    num_classes: int
    num_features: int
    global_pool: str = "avg"
    pretrained_cfg: dict[str, Any]
    model_args: dict[str, Any]

    def __init__(self, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.num_classes = check_positive("num_classes", num_classes, allow_zero=True)
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.drop_rate = float(drop_rate)
        self.grad_checkpointing = False
        self.head_drop: nn.Module  # the dropout before the classifier, set by subclasses
        self.pretrained_cfg = {}
        self.model_args = {}

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    # -- subclass hooks -------------------------------------------------------------------
    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def body(self) -> Iterable[nn.Module]:
        raise NotImplementedError

    def final_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- timm interface ---------------------------------------------------------------------
    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_forward(x)
        for block in self.body():
            if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.final_forward(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.pretrained_cfg.get("classifier", self._classifier_name))

    _classifier_name = "fc"

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "avg"):
            raise ValueError(f"unsupported global_pool {global_pool!r}; valid choices: ['avg']")
        self.num_classes = check_positive("num_classes", num_classes, allow_zero=True)
        head = self._make_head(num_classes)
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, 0, 0.01)
            nn.init.zeros_(head.bias)
        head.to(device=self.params_device())
        setattr(self, self._classifier_name, head)
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}

    def params_device(self) -> torch.device:
        """Device of the model's parameters (where a new head must live)."""
        return next(self.parameters()).device

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        raise NotImplementedError

