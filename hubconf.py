"""torch.hub entrypoints: every tglc_zoo model, e.g. ::

    torch.hub.load("<repo dir>", "wrn16_4_gc2l_n4", source="local", pretrained="<checkpoint folder>",
                   num_classes=5)

Each entrypoint is ``fn(pretrained=False, **kwargs)``; ``pretrained`` may be ``True`` (the model's
default pretrained tag), a tag (``"fmnist"``), or any source ``tglc_zoo.from_pretrained`` accepts
(a checkpoint folder, a ``.safetensors`` file, an ``https://``/``file://`` URL, a Hugging Face repo id).
Keyword arguments are those of ``tglc_zoo.create_model`` (``num_classes``, ``in_chans``, ``drop_rate``, ...).
"""
dependencies = ["torch", "torchvision", "timm", "huggingface_hub", "safetensors"]

from tglc_zoo.registry import list_models as _list_models  # noqa: E402
from tglc_zoo.registry import model_entrypoint as _model_entrypoint  # noqa: E402

globals().update({_name: _model_entrypoint(_name) for _name in _list_models()})
