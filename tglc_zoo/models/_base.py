"""The model base class: timm's model interface over a stem, stages of blocks, final layers and a head.

No ``from __future__ import annotations`` here or in the family modules: TorchScript reads the class
annotations of a module, and cannot read them as strings.
"""
from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ModelArgumentError
from ._checks import check_positive, check_rate
from ._frozen_bn import check_norm_layer
from ._indices import take_indices
from ._interface import ZooModel
from ._pooling import check_global_pool, global_pool_2d

__all__ = ["ClassifierModel", "ZooModel"]  # ZooModel: imported from here by training/, pretrained.py, convert/


class ClassifierModel(nn.Module):
    """Head, feature levels, checkpointing and bookkeeping of timm's model interface.

    ``forward_features`` runs ``stem``, the stage container (named by ``_stages_name``: a Sequential of stages,
    each a Sequential of blocks), then the final layers ``norm`` → ``act`` → ``conv_head`` (each an identity
    where a family has none); ``forward_head`` pools, drops out and applies the classifier (named by
    ``_classifier_name``). :class:`~tglc_zoo.models.StagedNet` builds all of them; ``feature_info`` lists the
    feature levels (``module`` names ``"stem"`` or a stage). A family that renames the stage container or
    the classifier overrides the two scriptable accessors :meth:`forward_stages` and :meth:`classify`.
    """

    # pretrained_cfg / model_args / feature_info are plain Python data TorchScript has no types for
    __jit_ignored_attributes__ = ["pretrained_cfg", "_model_args", "feature_info"]
    __jit_unused_properties__ = ["default_cfg", "model_args"]

    num_classes: int
    num_features: int
    head_hidden_size: int
    output_stride: int
    global_pool: str
    drop_rate: float
    drop_path_rate: float
    grad_checkpointing: bool
    _classifier_name = "fc"
    _stages_name = "stages"

    def __init__(self, num_classes: int, drop_rate: float, global_pool: str = "avg",
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.num_classes = check_positive("num_classes", num_classes, allow_zero=True)
        self.drop_rate = check_rate("drop_rate", drop_rate)
        self.drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
        self.global_pool = check_global_pool(global_pool, num_classes)
        self.grad_checkpointing = False
        self.stem: nn.Module
        self.stages: nn.Module  # the default names of the stage container and the classifier (see the class doc)
        self.fc: nn.Module
        self.norm: nn.Module  # final layers after the last stage; identities where a family has none
        self.act: nn.Module
        self.conv_head: nn.Module
        self.head_drop: nn.Module  # the dropout before the classifier
        self.pretrained_cfg: dict[str, Any] = {}
        self._model_args: dict[str, Any] = {}
        self.feature_info: list[dict[str, Any]] = []

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    @property
    def model_args(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this architecture (set by the builder); a ``norm_layer`` given as a
        class is kept by name, so the arguments stay JSON (a checkpoint's ``config.json``)."""
        return self._model_args

    @model_args.setter
    def model_args(self, value: dict[str, Any]) -> None:
        args = dict(value)
        if "norm_layer" in args:
            args["norm_layer"] = check_norm_layer(args["norm_layer"])
        self._model_args = args

    # -- the forward pass (scriptable) ------------------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        """The stages (grad checkpointing through :meth:`_checkpointed_stages`)."""
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return self._checkpointed_stages(x)
        return self.stages(x)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The final normalisation that ``forward_intermediates(norm=True)`` applies to the last level."""
        return self.act(self.norm(x))

    def final_forward(self, x: torch.Tensor) -> torch.Tensor:
        """What follows the last stage inside ``forward_features``: the final norm/act, then the head conv."""
        return self.conv_head(self.final_norm(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier applied to pooled features."""
        return self.fc(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_forward(self.forward_stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = global_pool_2d(x, self.global_pool)
        x = self.head_drop(x)
        return x if pre_logits else self.classify(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # -- structure ---------------------------------------------------------------------------
    @torch.jit.ignore
    def stages_module(self) -> nn.Sequential:
        stages = getattr(self, self._stages_name)
        assert isinstance(stages, nn.Sequential)
        return stages

    @torch.jit.ignore
    def levels(self) -> list[tuple[str, nn.Module]]:
        """The modules ``forward_features`` runs before :meth:`final_forward`, in order, with their names."""
        return [("stem", self.stem)] + [(f"{self._stages_name}.{i}", s) for i, s in enumerate(self.stages_module())]

    @torch.jit.ignore
    def body(self) -> Iterable[nn.Module]:
        """The blocks of every stage, in order."""
        return (block for stage in self.stages_module() for block in cast(nn.Sequential, stage))

    @torch.jit.ignore
    def _checkpointed_stages(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.body():
            x = checkpoint(block, x, use_reentrant=False)
        return x

    # -- timm interface ---------------------------------------------------------------------
    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Any:
        """The classifier module (its name with ``name_only=True``)."""
        return self._classifier_name if name_only else getattr(self, self._classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` (0: none); ``global_pool`` (one of ``POOL_TYPES``) changes
        the pooling, ``""`` (with ``num_classes=0``) makes ``forward`` return unpooled features."""
        num_classes = check_positive("num_classes", num_classes, allow_zero=True)
        pool = check_global_pool(self.global_pool if global_pool is None else global_pool, num_classes)
        head = self._make_head(num_classes)
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, 0, 0.01)
            nn.init.zeros_(head.bias)
        head.to(device=self.params_device())
        self.num_classes, self.global_pool = num_classes, pool
        setattr(self, self._classifier_name, head)
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}

    @torch.jit.ignore
    def params_device(self) -> torch.device:
        """Device of the model's parameters (where a new head must live)."""
        return next(self.parameters()).device

    @torch.jit.ignore
    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the outputs of the feature levels of ``feature_info`` on the way through.

        Args:
            indices: ``None`` every level, an int the last n, a sequence those levels (negative from the end).
            norm: apply the final normalisation to the last level when it is taken.
            stop_early: stop after the last level taken (the returned final features are then that level's).
            output_fmt: only ``"NCHW"``.
            intermediates_only: return only the list of intermediates.

        Returns:
            ``(forward_features(x), intermediates)``, or the intermediates alone.
        """
        if output_fmt != "NCHW":
            raise ModelArgumentError(f"output_fmt {output_fmt!r} is not supported; valid choices: ['NCHW']")
        taken, max_index = take_indices(len(self.feature_info), indices)
        wanted = {self.feature_info[i]["module"] for i in taken}
        last_needed = self.feature_info[max_index]["module"]
        levels = self.levels()
        checkpointing = self.grad_checkpointing and self.training
        intermediates = []
        ran_all = True
        for i, (name, module) in enumerate(levels):
            if checkpointing and name != "stem":
                for block in cast(nn.Sequential, module):
                    x = checkpoint(block, x, use_reentrant=False)
            else:
                x = module(x)
            if name in wanted:
                intermediates.append(self.final_norm(x) if norm and i == len(levels) - 1 else x)
            if stop_early and name == last_needed:
                ran_all = i == len(levels) - 1
                break
        if intermediates_only:
            return intermediates
        return (self.final_forward(x) if ran_all else x), intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last level in ``indices`` (and the final layers with them, or with
        ``prune_norm``); ``prune_head`` removes pooling and classifier. Returns the absolute indices kept."""
        taken, max_index = take_indices(len(self.feature_info), indices)
        names = [name for name, _ in self.levels()]
        keep = names.index(self.feature_info[max_index]["module"])  # stages kept: levels after the stem
        stages = self.stages_module()
        if keep < len(stages) or prune_norm:
            setattr(self, self._stages_name, stages[:keep])
            self.norm, self.act, self.conv_head = nn.Identity(), nn.Identity(), nn.Identity()
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head:
            self.reset_classifier(0, "")
        return taken

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        stages = self._stages_name
        return dict(stem=r"^stem", blocks=rf"^{stages}\.(\d+)" if coarse else [
            (rf"^{stages}\.(\d+)\.(\d+)", None), (r"^(?:norm|conv_head)", (99999,))])
