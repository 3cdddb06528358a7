"""Shared helpers of the model tests: timm's model contract, eval outputs of a meaningful size, and relative
comparisons."""
import pytest
import torch
from timm.models import group_parameters
from torch import nn

import tglc_zoo


def settle_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``x`` (one training forward, cumulative average)
    and return the model in eval mode.

    Freshly initialised, a deep net's eval outputs can be vanishingly small (MobileNetV2's are ~1e-10 with
    unit running variances), which would make any absolute tolerance pass; settled, they are O(1).
    """
    momenta = {}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            momenta[m] = m.momentum
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in momenta.items():
        m.momentum = momentum
    return model.eval()


def assert_rel_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5) -> None:
    """``max |got - want| <= rtol * max |want|``, with ``want`` of a meaningful size."""
    scale = float(want.abs().max())
    assert scale > 1e-3, f"reference output too small to compare against ({scale:.3g})"
    err = float((got - want).abs().max())
    assert err <= rtol * scale, f"max |diff| {err:.3g} > {rtol:g} x max |reference| {scale:.3g}"


def contract_input(model: nn.Module, batch: int = 2, device: str = "cpu") -> torch.Tensor:
    """A small input the model reduces to at least 1×1 (8×8 for models that reduce by 4 at most, else 32×32)."""
    size = 8 if model.output_stride <= 4 else 32
    return torch.randn(batch, model.model_args["in_chans"], size, size, device=device)


def check_contract(name: str, device: str) -> nn.Module:
    """timm's model contract on ``create_model(name)`` (``test_model_forward``, ``_backward``, ``_default_cfgs``
    of timm's ``tests/test_models.py``): shapes, gradients to every parameter, the config's module names, the
    feature levels, parameter groups and the classifier resets. Returns the model (3 classes, average-pooled)."""
    with torch.device(device):
        model = tglc_zoo.create_model(name, num_classes=7)
    model.train()
    x = contract_input(model, device=device)
    out = model(x)
    assert out.shape == (2, 7)
    out.float().square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"{name}: parameters without gradient: {no_grad[:5]}"

    model.eval()
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features, *(-(-s // model.output_stride) for s in x.shape[-2:]))
    assert model.head_hidden_size == model.num_features > 0
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
    assert model.forward_head(feats).shape == (2, 7)

    cfg = model.pretrained_cfg
    assert cfg["architecture"] == name and cfg["num_classes"] == 7
    first = model.get_submodule(cfg["first_conv"])
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 3
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert model.get_classifier().out_features == 7
    for info in model.feature_info:
        model.get_submodule(info["module"])
    groups = group_parameters(model, model.group_matcher())
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))

    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features) and model.num_classes == 0
    model.reset_classifier(0, "")  # no pooling: forward returns the unpooled features
    assert model(x).shape == feats.shape and model.global_pool == ""
    with pytest.raises(ValueError, match=r"global_pool='' .*needs num_classes=0, got num_classes=3"):
        model.reset_classifier(3)
    model.reset_classifier(3, "avg")
    assert model(x).shape == (2, 3) and model.num_classes == 3
    return model


def check_contract_real(name: str) -> None:
    """:func:`check_contract` on the CPU, then channels_last and grad checkpointing compute what the plain
    forward computes."""
    model = check_contract(name, "cpu")
    x = contract_input(model)
    settle_batchnorm(model, contract_input(model, batch=8))  # eval outputs of a size worth comparing
    with torch.no_grad():
        y = model(x)
        y_cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert_rel_close(y_cl, y, rtol=1e-4)

    model.train()
    torch.manual_seed(1)
    y1 = model(x)
    model.set_grad_checkpointing(True)
    torch.manual_seed(1)
    y2 = model(x)
    y2.sum().backward()
    model.set_grad_checkpointing(False)
    torch.testing.assert_close(y1, y2)
