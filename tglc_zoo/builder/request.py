"""What a ``create_model`` call asks the builder for, with timm's keyword arguments taken out of the model's."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelArgumentError
from ..weights import manifest_cfgs
from .limits import LIMIT_KWARGS, Limits

__all__ = ["FEATURE_KWARGS", "BuildRequest"]

FEATURE_KWARGS = ("out_indices", "feature_cls", "flatten_sequential")
"""timm's feature-extraction keywords, taken out of the model's arguments into ``feature_cfg``."""
_CONFIG_SOURCES = ("local-dir", "hf-hub")


def _config_source(pretrained_cfg: Any) -> str | None:
    """The folder or Hub repo whose ``config.json`` timm's ``local-dir:``/``hf-hub:`` route read, if any."""
    cfg = pretrained_cfg if isinstance(pretrained_cfg, dict) else None
    if cfg is None or cfg.get("source") not in _CONFIG_SOURCES:
        return None
    if cfg["source"] == "hf-hub":
        return f"hf-hub:{cfg.get('hf_hub_id')}"
    return str(Path(str(cfg.get("file"))).resolve())


@dataclass
class BuildRequest:
    """One build: the architecture's name, the weights asked for, timm's config arguments, the model's
    arguments, the feature-extractor options and the :class:`~tglc_zoo.builder.limits.Limits`."""

    name: str
    pretrained: Any = False
    pretrained_cfg: Any = None            # a tag, a dict or a timm PretrainedCfg
    overlay: dict[str, Any] | None = None
    cache_dir: str | Path | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    feature_cfg: dict[str, Any] | None = None  # features_only=True: the feature extractor's options
    limits: Limits = field(default_factory=Limits)
    config_source: str | None = None      # the folder / Hub repo whose config.json drives this build (timm's routes)
    config_args: dict[str, Any] = field(default_factory=dict)  # that config's model_args (timm passes them twice)

    @property
    def overrides(self) -> list[str]:
        """The arguments the caller gives beyond (or against) the config's ``model_args``, head and stem aside."""
        return sorted(k for k, v in self.model_kwargs.items() if k not in ("num_classes", "in_chans")
                      and (k not in self.config_args or self.config_args[k] != v))

    @property
    def from_config(self) -> bool:
        """A config someone else wrote decides what is built: a checkpoint's, or a config.json timm read."""
        return bool(self.pretrained) or self.config_source is not None

    @classmethod
    def from_call(cls, name: str, pretrained: Any, kwargs: dict[str, Any]) -> BuildRequest:
        kwargs = dict(kwargs)
        limits = Limits.resolve(**{k: kwargs.pop(k) for k in LIMIT_KWARGS if k in kwargs})
        req = cls(name, pretrained, kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None),
                  kwargs.pop("cache_dir", None), limits=limits)
        req.config_source = _config_source(req.pretrained_cfg)
        req.config_args = dict(kwargs.pop("pretrained_model_args", None) or {})  # timm's hf-hub:/local-dir: routes
        features_only = kwargs.pop("features_only", False)
        feature_cfg = dict(kwargs.pop("feature_cfg", None) or {})
        feature_cfg.update({k: kwargs.pop(k) for k in FEATURE_KWARGS if k in kwargs})
        if features_only:
            req.feature_cfg = feature_cfg
        elif feature_cfg:
            raise ModelArgumentError(f"{sorted(feature_cfg)} configure a feature backbone and need features_only=True "
                                     f"(create_model({name!r}, features_only=True, ...))")
        req.model_kwargs = kwargs
        if isinstance(pretrained, str) and f"{name}.{pretrained}" in manifest_cfgs():
            req.pretrained, req.pretrained_cfg = True, pretrained  # a tag of this model
        return req
