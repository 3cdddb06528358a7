"""The one builder behind every architecture: resolve the config, check it, build the model, load its weights.

Every load route calls down into it: ``pretrained`` → ``registry`` (a name or a source's config → its
architecture's entrypoint) → :func:`build_model_with_cfg` → ``models`` / ``checkpoint``.

* :mod:`.request` — what a ``create_model`` call asks for (timm's keyword arguments taken out);
* :mod:`.arch` — what the builder needs from an architecture, and the zoo's own;
* :mod:`.source` — which checkpoint a source or ``pretrained=`` names (tags' Hub repos by their mirror);
* :mod:`.plan` — what the checkpoint's config and tensor shapes say, reconciled with the request;
* :mod:`.limits`, :mod:`.guard` — what a config may ask for, checked on the meta device first;
* :mod:`.load` — strict loading with the two asked-for adaptations (head, stem);
* :mod:`.build` — the steps, in order.
"""
from .arch import Architecture, ZooArchitecture, default_weights_tag
from .build import ResolvedConfig, build_model, build_model_with_cfg, load_checkpoint_into, resolve_config
from .limits import Limits
from .load import LoadReport, load_pretrained_into
from .plan import PRETRAINED_CFG_FIELDS
from .request import BuildRequest
from .source import resolve_checkpoint, resolve_pretrained

__all__ = ["PRETRAINED_CFG_FIELDS", "Architecture", "BuildRequest", "Limits", "LoadReport", "ResolvedConfig",
           "ZooArchitecture", "build_model", "build_model_with_cfg", "default_weights_tag", "load_checkpoint_into",
           "load_pretrained_into", "resolve_checkpoint", "resolve_config", "resolve_pretrained"]
