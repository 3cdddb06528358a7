"""``drop_path_rate``: stochastic depth on the residual branches, set per block as timm's ResNets do."""
import pytest
import timm
import torch
from timm.layers import calculate_drop_path_rates

import tglc_zoo


def _rates(model):
    return [getattr(block.drop_path, "drop_prob", 0.0) for block in model.body()]


def test_rates_are_timms_resnet_rule():
    """The stage loop takes timm's ``calculate_drop_path_rates``, which is timm's ResNet rule."""
    resnet = timm.create_model("resnet18", drop_path_rate=0.2)
    blocks = [b for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4) for b in layer]
    assert calculate_drop_path_rates(0.2, len(blocks)) == pytest.approx([getattr(b.drop_path, "drop_prob", 0.0)
                                                               for b in blocks])
    wrn = tglc_zoo.create_model("wrn16_2_gc2l_n2", drop_path_rate=0.2)
    assert _rates(wrn) == pytest.approx([0.2 * i / 5 for i in range(6)])
    assert wrn.model_args["drop_path_rate"] == 0.2
    mnv2 = timm.create_model("mobilenetv2_shuffle_n2", drop_path_rate=0.3)
    blocks = list(mnv2.body())
    # only residual blocks have a branch to drop; their rate is their position among all 17 blocks
    assert _rates(mnv2) == pytest.approx([0.3 * i / 16 if b.use_res else 0.0 for i, b in enumerate(blocks)])
    assert sum(r > 0 for r in _rates(mnv2)) == 10
    assert all(r == 0.0 for r in _rates(tglc_zoo.create_model("wrn16_2")))  # off by default


@pytest.mark.parametrize("name", ["wrn16_2_gc2l_n2", "mobilenetv2_flgc_n2"])
def test_eval_and_no_drop_path_compute_the_same(name):
    torch.manual_seed(0)
    plain = tglc_zoo.create_model(name).eval()
    dropping = tglc_zoo.create_model(name, drop_path_rate=0.5).eval()
    dropping.load_state_dict(plain.state_dict())  # drop path adds no state
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(dropping(x), plain(x))


def test_training_drops_whole_residual_branches_per_sample():
    """In training, each sample's residual branch is dropped (output = shortcut) or kept and scaled by
    1 / (1 - p) — the last block of WRN-16-2 with drop_path_rate=0.5 has p = 0.5."""
    model = tglc_zoo.create_model("wrn16_2_gc_n2", drop_path_rate=0.5)
    block = list(model.body())[-1]
    assert block.drop_path.drop_prob == 0.5
    block.eval()
    x = torch.randn(256, block.bn1.num_features, 4, 4)
    with torch.no_grad():
        full = block(x)  # eval: branch + shortcut
        shortcut = x if block.shortcut is None else block.shortcut(block.act(block.bn1(x)))
        branch = full - shortcut
        block.drop_path.train()  # only the drop path trains: BN keeps its statistics
        torch.manual_seed(0)
        out = block(x)
    dropped = (out - shortcut).flatten(1).abs().amax(1) < 1e-6
    kept = ((out - shortcut) - 2 * branch).flatten(1).abs().amax(1) < 1e-4
    assert bool((dropped ^ kept).all())  # every sample is one or the other
    assert 80 < int(dropped.sum()) < 176  # about half (binomial(256, 0.5): mean 128, sd 8)


def test_training_with_drop_path_runs_backward():
    model = tglc_zoo.create_model("wrn16_2_gc2l_n2", drop_path_rate=0.3, num_classes=5).train()
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.1"])
def test_bad_rates_are_named(rate):
    with pytest.raises(ValueError, match=rf"drop_path_rate must be in \[0, 1\), got {rate!r}"):
        tglc_zoo.create_model("wrn16_2", drop_path_rate=rate)
