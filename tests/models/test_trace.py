"""TorchScript and FX, for every conv type in both families (timm's ``test_model_forward_torchscript``,
``_forward_fx``, ``_backward_fx``, ``_forward_fx_torchscript``, with values compared, not only shapes).

FX must compute exactly what eager computes: GC-2L chooses its implementation per input (shape,
layout, grad mode) and Shuffle keeps a channels_last layout, so each is one wrapped call in the graph
(``torch.fx.wrap``) that still decides when the graph runs — checked bitwise in both memory formats.
"""
import pytest
import timm
import torch
from model_helpers import assert_rel_close, settle_batchnorm
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import tglc_zoo
from tglc_zoo.layers import TwoLevelGroupConv2d, fix_impl

NAMES = ["wrn16_2", "wrn16_2_gc_n2", "wrn16_2_gc2l_n2", "wrn16_2_shuffle_n2", "wrn16_2_flgc_n2",
         "mobilenetv2_gc2l_n2", "mobilenetv2_shuffle_n2"]


def _x(model, batch=2, channels_last=False):
    x = torch.randn(batch, model.pretrained_cfg["input_size"][0], 32, 32)
    return x.to(memory_format=torch.channels_last) if channels_last else x


def _close(a, b):
    assert_rel_close(a, b, rtol=1e-5)


def _model(name, **kwargs):
    """A model whose eval outputs are O(1) (BatchNorm statistics settled on random data)."""
    model = tglc_zoo.create_model(name, **kwargs)
    return settle_batchnorm(model, _x(model, 8))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "mobilenetv2_shuffle_n2"])
def test_torchscript_matches_eager(name, tmp_path):
    model = _model(name)
    x = _x(model)
    with torch.no_grad():
        want = model(x)
        fix_impl(model, x)  # pinned to the table's choice, the scripted model runs eager's own kernels
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, tmp_path / "m.pt")
        loaded = torch.jit.load(tmp_path / "m.pt")
        _close(loaded(x), want)
        _close(loaded.forward_features(x), model.forward_features(x))


def test_torchscript_runs_an_unpinned_auto_layer_as_split():
    model = _model("wrn16_2_gc2l_n2")
    x = _x(model)
    with torch.no_grad():
        scripted = torch.jit.script(model)
        for layer in model.modules():
            if isinstance(layer, TwoLevelGroupConv2d):
                layer.impl = "split"
        _close(scripted(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_fx_is_exact_and_trains(name):
    model = _model(name, num_classes=5)
    graph = torch.fx.symbolic_trace(model)  # plain FX, no leaf list needed
    with torch.no_grad():
        for channels_last in (False, True):
            m = model.to(memory_format=torch.channels_last) if channels_last else model
            x = _x(model, channels_last=channels_last)
            assert torch.equal(graph(x), m(x))
    graph.train()  # the same graph trains: every parameter gets a gradient
    graph(_x(model)).mean().backward()
    missing = [n for n, p in graph.named_parameters() if p.grad is None]
    assert not missing, missing[:5]


@pytest.mark.parametrize("name", ["wrn16_2_gc2l_n2", "mobilenetv2_shuffle_n2"])
def test_timm_fx_extraction_and_fx_torchscript(name):
    """timm's way: its leaf modules and torchvision's feature extractor, in training mode with a backward;
    then the FX graph scripted (timm's test_model_forward_fx_torchscript)."""
    model = _model(name, num_classes=5).train()
    kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    train_nodes, _ = get_graph_node_names(model, tracer_kwargs=kwargs)
    extractor = create_feature_extractor(model, return_nodes=[train_nodes[-1]], tracer_kwargs=kwargs)
    out = next(iter(extractor(_x(model)).values()))
    assert out.shape == (2, 5)
    out.mean().backward()
    missing = [n for n, p in extractor.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    model.eval()
    scripted = torch.jit.script(torch.fx.symbolic_trace(model))
    with torch.no_grad():
        x = _x(model)
        _close(scripted(x), model(x))


def test_gc2l_is_one_graph_call_per_layer_that_decides_at_run_time():
    model = tglc_zoo.create_model("wrn16_2_gc2l_n2").eval()
    graph = torch.fx.symbolic_trace(model)
    calls = [n for n in graph.graph.nodes if n.op == "call_function" and n.target.__name__ == "gc2l_forward"]
    assert len(calls) == sum(isinstance(m, TwoLevelGroupConv2d) for m in model.modules())
    seen = []
    for layer in model.modules():
        if isinstance(layer, TwoLevelGroupConv2d):
            layer.register_forward_pre_hook(lambda m, a: seen.append(m.resolve_impl(a[0])))
    with torch.no_grad():
        model(_x(model))
    eager = list(seen)
    seen.clear()
    # the traced graph calls the function, not the module: resolve the choice the function makes
    from tglc_zoo.layers import two_level_conv

    original = two_level_conv.run_impl
    picked = []
    two_level_conv.run_impl = lambda impl, *a: picked.append(impl) or original(impl, *a)
    try:
        with torch.no_grad():
            graph(_x(model))
    finally:
        two_level_conv.run_impl = original
    assert picked == eager


def test_timm_scriptable_flag_and_features_fx():
    from timm import set_scriptable

    with set_scriptable(True):
        model = timm.create_model("wrn16_2_shuffle_n2").eval()
    torch.jit.script(model)
    backbone = timm.create_model("wrn16_2_gc2l_n2", features_only=True, feature_cls="fx").eval()
    outs = torch.jit.script(backbone)(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == backbone.feature_info.channels()
