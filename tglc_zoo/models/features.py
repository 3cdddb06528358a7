"""Feature backbones: a built model wrapped by one of timm's feature extractors (``features_only=True``).

Every family lists its feature levels in ``feature_info`` (``num_chs``, ``reduction``, ``module``) and
implements ``forward_intermediates`` / ``prune_intermediate_layers``, so all of timm's wrappers work:

* ``"list"`` (default) / ``"dict"`` — timm's ``FeatureListNet`` / ``FeatureDictNet``: the model's modules up
  to the last level taken, run in order (stages flattened one level);
* ``"hook"`` — ``FeatureHookNet``: the whole model with forward hooks on the levels;
* ``"getter"`` — ``FeatureGetterNet``: ``forward_intermediates`` on the model pruned after the last level;
* ``"fx"`` — ``FeatureGraphNet``: an FX graph of the model that returns the levels.
"""
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

from timm.models import FeatureDictNet, FeatureGraphNet, FeatureHookNet, FeatureListNet
from timm.models._features import FeatureGetterNet  # timm's own builder takes it from here too
from torch import nn

from ..errors import ModelArgumentError
from ..util.choices import check_choice
from ._indices import take_indices

__all__ = ["FEATURE_CLASSES", "feature_pretrained_cfg", "normalize_out_indices", "wrap_features"]

FEATURE_CLASSES: dict[str, type[nn.Module]] = {
    "list": FeatureListNet, "dict": FeatureDictNet, "hook": FeatureHookNet, "getter": FeatureGetterNet,
    "fx": FeatureGraphNet,
}
_FLATTENING = ("list", "dict", "hook")  # the wrappers that rebuild the model from its modules


def normalize_out_indices(num_levels: int, out_indices: int | Sequence[int] | None) -> tuple[int, ...]:
    """Absolute, sorted, distinct level indices (``None``: every level; an int: the last n). The outputs come
    in forward order whatever order was asked for, so ``feature_info`` is given in that order too."""
    return tuple(sorted(set(take_indices(num_levels, out_indices)[0])))


def feature_pretrained_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """The pretrained config of a feature backbone: the model's, without its classifier fields (as timm)."""
    out = deepcopy(cfg)
    for key in ("num_classes", "classifier", "global_pool"):
        out.pop(key, None)
    return out


def wrap_features(model: nn.Module, feature_cls: str | type[nn.Module] = "list",
                  out_indices: int | Sequence[int] | None = None, **feature_cfg: Any) -> nn.Module:
    """``model`` as a feature backbone returning the levels ``out_indices`` of its ``feature_info``.

    Args:
        feature_cls: one of :data:`FEATURE_CLASSES` (or one of those classes).
        out_indices: ``None`` every level, an int the last n, or level indices (negative from the end).
        **feature_cfg: the wrapper's own options (``flatten_sequential``, ``out_map``, ``norm``, ...).
    """
    if isinstance(feature_cls, str):
        kind = check_choice("feature_cls", feature_cls.lower(), FEATURE_CLASSES)
    else:
        kinds = [k for k, cls in FEATURE_CLASSES.items() if cls is feature_cls]
        if not kinds:
            raise ModelArgumentError(f"feature_cls {feature_cls!r} is not one of timm's feature extractors; "
                                     f"valid choices: {list(FEATURE_CLASSES)}")
        kind = kinds[0]
    feature_info = getattr(model, "feature_info", None)
    if not feature_info:
        raise ModelArgumentError(f"{type(model).__name__} has no feature_info; features_only needs a tglc_zoo model")
    indices = normalize_out_indices(len(feature_info), out_indices)
    cfg = dict(feature_cfg)
    if kind in _FLATTENING:
        cfg.setdefault("flatten_sequential", True)  # stages live one Sequential deep
    else:
        cfg.pop("flatten_sequential", None)
    pretrained_cfg = feature_pretrained_cfg(getattr(model, "pretrained_cfg", {}))
    wrapped = FEATURE_CLASSES[kind](model, out_indices=indices, **cfg)
    for key in ("pretrained_cfg", "default_cfg"):  # as timm's builder sets them (default_cfg: the older name)
        setattr(wrapped, key, pretrained_cfg)
    return wrapped
