"""What the builder needs from an architecture (:class:`Architecture`), and the zoo's own (:class:`ZooArchitecture`).

timm's ``build_model_with_cfg`` takes the model class from the entrypoint; this builder takes an
:class:`Architecture`: how its pretrained config is found, which arguments it takes, and how it is
built. Every name of :data:`tglc_zoo.archs.VARIANTS` is a :class:`ZooArchitecture`; other
architectures (the ``tglc_grouped`` of converted models) implement the same protocol and are
registered with :func:`tglc_zoo.registry.register_architecture`.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol

from timm.models import resolve_pretrained_cfg
from torch import nn

from ..archs import Variant, arch_default_cfg, pool_size_for
from ..errors import ConfigError, UnknownChoiceError
from ..models._adapt import adapt_channel_stats
from ..weights import tags_of
from .limits import Limits
from .plan import PRETRAINED_CFG_FIELDS
from .request import BuildRequest

__all__ = ["Architecture", "ZooArchitecture", "default_weights_tag"]


class Architecture(Protocol):
    """An architecture as the builder sees it; ``num_classes`` and ``in_chans`` are always model arguments."""

    name: str
    features: bool  # can be wrapped as a feature backbone (features_only=True)

    def resolve_cfg(self, req: BuildRequest) -> dict[str, Any]:
        """The pretrained config that describes the model ``req`` asks for."""
        ...

    def model_kwargs(self, cfg: dict[str, Any], saved: Mapping[str, Any] | None, requested: Mapping[str, Any],
                     origin: str) -> dict[str, Any]:
        """The arguments to build with: the defaults for ``cfg``, then a checkpoint's ``saved`` ones (``None``:
        no checkpoint), then the caller's; an argument the architecture does not take is an error."""
        ...

    def validate(self, model_kwargs: Mapping[str, Any], origin: str, limits: Limits) -> None:
        """Refuse, before anything is built, arguments that ``limits`` do not allow."""
        ...

    def build(self, cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> nn.Module:
        """The model (randomly initialised), with its ``pretrained_cfg`` and ``model_args`` set."""
        ...


def default_weights_tag(name: str) -> str | None:
    """The tag ``pretrained=True`` loads for the untagged ``name``: its first tag with weights in manifest order."""
    tags = tags_of(name)
    return tags[0].rpartition(".")[2] if tags else None


def timm_cfg(cfg: Any) -> Any:
    """A pretrained config as timm takes it: a dict keeps only ``PretrainedCfg``'s fields (timm refuses others)."""
    return {k: v for k, v in cfg.items() if k in PRETRAINED_CFG_FIELDS} if isinstance(cfg, dict) else cfg


class ZooArchitecture:
    """A registered tglc_zoo name: its ``ArchSpec``'s model class, conv type and N."""

    features = True

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.name = variant.name

    def resolve_cfg(self, req: BuildRequest) -> dict[str, Any]:
        """The requested tag (or timm's ``pretrained_cfg``), else — for ``pretrained=True`` — the name's default
        tag, else the architecture's own config (which describes an untrained model and weights given by source)."""
        pretrained_cfg = req.pretrained_cfg
        if pretrained_cfg is None and req.pretrained is True and not any((req.overlay or {}).get(k) for k in
                                                                          ("file", "url", "hf_hub_id")):
            pretrained_cfg = default_weights_tag(self.name)  # timm's default cfg is the architecture's: no weights
        if pretrained_cfg is None and req.pretrained is not True:
            pretrained_cfg = arch_default_cfg(self.variant)
        return resolve_pretrained_cfg(self.name, pretrained_cfg=timm_cfg(pretrained_cfg),
                                      pretrained_cfg_overlay=req.overlay).to_dict()

    def check_kwargs(self, kwargs: Mapping[str, Any], origin: str) -> None:
        """Refuse arguments the model class does not take, naming them and the valid ones."""
        spec = self.variant.spec
        params = inspect.signature(spec.model_cls.__init__).parameters
        valid = sorted(n for n in params if n != "self" and n not in spec.kwargs)
        unknown = sorted(k for k in kwargs if k not in valid)
        if unknown:
            error = ConfigError if origin != "call" else UnknownChoiceError
            where = "" if origin == "call" else f" in {origin}"
            raise error(f"{self.name} does not take the argument(s) {unknown}{where}; valid arguments: {valid}")

    def model_kwargs(self, cfg: dict[str, Any], saved: Mapping[str, Any] | None, requested: Mapping[str, Any],
                     origin: str) -> dict[str, Any]:
        self.check_kwargs(requested, "call")
        if saved is not None:
            self.check_kwargs(saved, origin)
        defaults = dict(conv_type=self.variant.conv_type, groups=self.variant.groups,
                        num_classes=cfg.get("num_classes", 10))
        return {**defaults, **(saved or {}), **requested}

    def validate(self, model_kwargs: Mapping[str, Any], origin: str, limits: Limits) -> None:
        """Nothing beyond the size limits: the model class checks its own arguments."""

    def build(self, cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> nn.Module:
        """Build the model class with ``model_kwargs``; its ``pretrained_cfg`` describes its real input."""
        spec = self.variant.spec
        model = spec.model_cls(**spec.kwargs, **model_kwargs)
        in_chans = model_kwargs.get("in_chans", 3)
        cfg = dict(cfg)
        input_size = (in_chans, *cfg["input_size"][1:])
        cfg.update(architecture=self.name, num_classes=model.num_classes, input_size=input_size,
                   pool_size=pool_size_for(input_size, model.output_stride),
                   **{k: adapt_channel_stats(cfg[k], in_chans) for k in ("mean", "std") if cfg.get(k)})
        model.pretrained_cfg = cfg
        model.model_args = {k: val for k, val in model_kwargs.items() if k != "num_classes"}
        model.model_args.setdefault("in_chans", in_chans)
        return model
