"""Loading pretrained weights into a freshly built model (resolution of the pretrained source)."""
from __future__ import annotations

from typing import Any

from torch import nn


def load_pretrained(model: nn.Module, pretrained: Any, cfg: dict[str, Any], *, num_classes: int,
                    in_chans: int, cache_dir: Any = None) -> None:
    """Load the weights named by ``pretrained``/``cfg`` into ``model``, adapting head and stem."""
    name = cfg.get("architecture")
    raise ValueError(f"no pretrained weights are available for {name!r} (pretrained={pretrained!r}); "
                     "see tglc_zoo.list_models(pretrained=True)")
