"""Exports for deployment: torch.export, TorchScript and ONNX (checked in onnxruntime on the CPU, ≤ 1e-4),
for every conv type, every GC-2L implementation, FLGC deployed first; ``scripts/export.py`` end to end.

ONNX export takes 10–40 s a model here, so those tests are marked slow (CI runs them): one model per conv
type, plus the CLI on a shipped FLGC checkpoint.
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from model_helpers import assert_rel_close, settle_batchnorm

import tglc_zoo
from tglc_zoo.errors import ExportError
from tglc_zoo.export import example_input, export_onnx, export_program, export_torchscript, prepare_for_export
from tglc_zoo.layers import DeployedFLGC, FLGCConv2d, TwoLevelGroupConv2d, fix_impl

CONV_TYPE_MODELS = ["wrn16_2", "wrn16_2_gc_n2", "wrn16_2_gc2l_n2", "wrn16_2_shuffle_n2", "wrn16_2_flgc_n2"]
ROOT = Path(__file__).resolve().parents[2]


def _eager(model, x):
    with torch.no_grad():
        return model.eval()(x)


def _model(name):
    """A model whose eval outputs are O(1) (BatchNorm statistics settled on random data)."""
    model = tglc_zoo.create_model(name)
    return settle_batchnorm(model, example_input(model, 8, seed=11))


def _close(got, want):
    assert_rel_close(got, want, rtol=1e-5)


def _gc2l_layers(model):
    return [m for m in model.modules() if isinstance(m, TwoLevelGroupConv2d)]


def test_prepare_deploys_flgc_and_pins_every_gc2l_layer_to_the_tables_choice():
    model = tglc_zoo.create_model("wrn16_2_flgc_n2").eval()
    prepared = prepare_for_export(model, example_input(model))
    assert not any(isinstance(m, FLGCConv2d) for m in prepared.modules())
    assert any(isinstance(m, DeployedFLGC) for m in prepared.modules())
    assert any(isinstance(m, FLGCConv2d) for m in model.modules())  # the user's model is left as it was

    model = tglc_zoo.create_model("wrn16_2_gc2l_n4").eval()
    x = example_input(model)
    expected = {}
    for name, layer in model.named_modules():
        if isinstance(layer, TwoLevelGroupConv2d):
            layer.register_forward_pre_hook(lambda m, a, name=name: expected.__setitem__(name, m.resolve_impl(a[0])))
    with torch.no_grad():
        want = model(x)
    prepared = prepare_for_export(model, x)
    pinned = {n: m.impl for n, m in prepared.named_modules() if isinstance(m, TwoLevelGroupConv2d)}
    assert pinned == expected and "auto" not in pinned.values()
    assert all(m.impl == "auto" for m in _gc2l_layers(model))
    with torch.no_grad():
        assert torch.equal(prepared(x), want)  # the same kernels as eager
    assert fix_impl(prepared, x) == {}  # nothing left to pin


@pytest.mark.parametrize("name", [*CONV_TYPE_MODELS, "mobilenetv2_gc2l_n2"])
def test_torch_export_matches_eager_with_a_dynamic_batch(name):
    model = _model(name)
    program = export_program(model, example_input(model))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("one_hot" in op or "argmax" in op for op in ops)  # FLGC runs deployed, not its training form
    for batch in (1, 3):
        x = example_input(model, batch, seed=batch)
        with torch.no_grad():
            _close(program.module()(x), _eager(model, x))


@pytest.mark.parametrize("impl", ["split", "addmm", "fused", "dense"])
def test_every_gc2l_impl_exports(impl):
    model = _model("wrn16_2_gc2l_n2")
    for layer in _gc2l_layers(model):
        layer.impl = impl
    x = example_input(model, 3, seed=1)
    program = export_program(model, example_input(model))
    with torch.no_grad():
        _close(program.module()(x), _eager(model, x))
    with torch.no_grad():
        _close(export_torchscript(model, x)(x), _eager(model, x))


def _onnxruntime(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", CONV_TYPE_MODELS)
def test_onnx_matches_eager_in_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    model = _model(name)
    check = export_onnx(model, tmp_path / "model.onnx")
    assert check.ok and check.max_abs_diff <= 1e-4 and check.batch_sizes == (1, 3)
    x = example_input(model, 5, seed=7)  # a batch size and values the export's own check never saw
    got, want = _onnxruntime(tmp_path / "model.onnx", x), _eager(model, x)
    assert float((got - want).abs().max()) <= 1e-4
    assert_rel_close(got, want, rtol=1e-4)  # and relative to the outputs' size (logits of a fresh head are small)


@pytest.mark.slow
def test_export_script_writes_onnx_and_input_config_for_a_shipped_checkpoint(tmp_path):
    """``scripts/export.py`` on a shipped GC-2L checkpoint: the ONNX model, fed real Fashion-MNIST test images
    through the transform its input_config.json describes, predicts what the eager model predicts. (FLGC,
    which no tag ships, is exported deployed in the tests above.)"""
    pytest.importorskip("onnxruntime")
    from timm.data import create_transform, resolve_data_config
    from torchvision.transforms.functional import to_pil_image

    from tglc_zoo.data import load_dataset

    spec = importlib.util.spec_from_file_location("export_cli", ROOT / "scripts" / "export.py")
    export_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_cli)
    tag = next(t for t in tglc_zoo.list_models("*_gc2l_n16*", pretrained=True))
    assert export_cli.main([tag, "--output", str(tmp_path / "out")]) == 0
    config = json.loads((tmp_path / "out" / "input_config.json").read_text())
    model = tglc_zoo.from_pretrained(tag).eval()
    data = resolve_data_config({}, model=model)
    assert {k: config[k] for k in data} == {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    assert config["architecture"] == tag.split(".")[0] and config["tag"] == tag.split(".")[1]
    assert config["label_names"] == list(model.pretrained_cfg["label_names"]) and config["onnx"]["opset"] >= 17
    transform = create_transform(**{k: config[k] for k in data})
    images = load_dataset("fmnist", train=False).images[:128]
    x = torch.stack([transform(to_pil_image(img)) for img in images])
    got = _onnxruntime(tmp_path / "out" / "model.onnx", x)
    want = _eager(model, x)
    assert float((got - want).abs().max()) <= 1e-4
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_missing_onnx_packages_are_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ExportError, match=r"ONNX export needs onnxruntime: pip install onnx onnxruntime onnxscript"):
        export_onnx(tglc_zoo.create_model("wrn16_2"), tmp_path / "m.onnx")


def test_export_needs_an_input_size():
    model = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(ExportError, match=r"cannot tell the input size of Conv2d.*pass input_size=\(C, H, W\)"):
        example_input(model)
