"""tglc_zoo: a PyTorch model zoo for two-level group convolution (GC-2L)."""
from .layers import CONV_TYPES, create_conv, deploy
from .pretrained import from_pretrained, pretrained_metrics, push_to_hub, save_pretrained
from .registry import create_model, is_model, list_models

__version__ = "0.1.0"

__all__ = ["CONV_TYPES", "create_conv", "deploy", "create_model", "is_model", "list_models",
           "from_pretrained", "pretrained_metrics", "push_to_hub", "save_pretrained", "__version__"]
