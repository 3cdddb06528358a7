"""Whole-model conversion: architecture, copied tensors, exactness at N = 1, the per-layer guarantee."""
from __future__ import annotations

import pytest
import torch
from convert_helpers import images, randomize

import tglc_zoo
from tglc_zoo.convert import kernel_error, layer_kernel, to_grouped
from tglc_zoo.layers import GroupConv2d, TwoLevelGroupConv2d


def _replaced_names(model):
    return {n for n, m in model.named_modules() if isinstance(m, (GroupConv2d, TwoLevelGroupConv2d))}


@pytest.mark.parametrize("conv_type", ["gc", "gc2l"])
@pytest.mark.parametrize("method", ["block_jacobi", "optimal"])
def test_same_architecture_as_create_model_and_copied_tensors(dense_wrn, conv_type, method):
    conv = to_grouped(dense_wrn, conv_type, 4, method)
    ref = tglc_zoo.create_model(f"wrn16_2_{conv_type}_n4", num_classes=3, in_chans=1)
    assert conv.pretrained_cfg["architecture"] == f"wrn16_2_{conv_type}_n4"
    assert conv.model_args == ref.model_args
    sd, ref_sd, src = conv.state_dict(), ref.state_dict(), dense_wrn.state_dict()
    assert sd.keys() == ref_sd.keys() and all(sd[k].shape == ref_sd[k].shape for k in sd)
    replaced = tuple(f"{n}." for n in _replaced_names(conv))
    copied = [k for k in sd if not k.startswith(replaced)]
    assert any(k.startswith("stem.") for k in copied) and "fc.weight" in copied
    assert any(k.endswith("running_var") for k in copied)
    assert all(torch.equal(sd[k], src[k]) for k in copied)
    assert not conv.training and len(conv.conversion_report) == len(_replaced_names(conv))


@pytest.mark.parametrize("conv_type", ["gc", "gc2l"])
def test_groups_1_conversion_is_exact(dense_wrn, conv_type):
    x = images()
    with torch.no_grad():
        y = dense_wrn(x)
        for kwargs in (dict(method="block_jacobi"), dict(method="optimal"),
                       dict(method="optimal", calibration_data=images(seed=5))):
            conv = to_grouped(dense_wrn, conv_type, 1, **kwargs)
            torch.testing.assert_close(conv(x), y, rtol=1e-5, atol=1e-5)
            assert all(r.relative_error == 0.0 for r in conv.conversion_report)


@pytest.mark.parametrize("calibrated", [False, True])
def test_gc2l_layers_never_worse_than_block_jacobi(dense_wrn, calibrated):
    data = images(batch=6, seed=3) if calibrated else None
    bj = to_grouped(dense_wrn, "gc2l", 4, "block_jacobi")
    opt = to_grouped(dense_wrn, "gc2l", 4, "optimal", calibration_data=data, max_iter=2)
    for rep in opt.conversion_report:
        assert rep.calibrated is calibrated
        assert rep.relative_error < rep.relative_block_jacobi_error  # random dense layers: strictly
    if not calibrated:  # measured from the modules themselves, not from the report
        for rep, bj_rep in zip(opt.conversion_report, bj.conversion_report):
            w = dense_wrn.get_submodule(rep.name).weight.detach()
            e_opt = kernel_error(w, layer_kernel(opt.get_submodule(rep.name)))
            e_bj = kernel_error(w, layer_kernel(bj.get_submodule(rep.name)))
            assert e_opt < e_bj
            assert e_bj / kernel_error(w, torch.zeros_like(w)) == pytest.approx(bj_rep.relative_error, rel=1e-5)


def test_conversion_brings_outputs_closer(dense_wrn):
    """Whole-network outputs: GC-2L optimal is closer to the dense model than block Jacobi on these inputs."""
    x = images(batch=8, seed=9)
    with torch.no_grad():
        y = dense_wrn(x)
        err = {m: float((to_grouped(dense_wrn, "gc2l", 2, m)(x) - y).norm()) for m in ("block_jacobi", "optimal")}
    assert err["optimal"] < err["block_jacobi"]


def test_source_is_untouched(dense_wrn):
    before = {k: v.clone() for k, v in dense_wrn.state_dict().items()}
    to_grouped(dense_wrn, "gc2l", 2, "optimal", calibration_data=images(), max_iter=1)
    assert all(torch.equal(before[k], v) for k, v in dense_wrn.state_dict().items())
    assert not dense_wrn.training


def test_unregistered_group_count_and_data_cfg_carried_over():
    src = randomize(tglc_zoo.create_model("wrn16_2", num_classes=3, in_chans=1))
    src.pretrained_cfg = {**src.pretrained_cfg, "mean": (0.3,), "std": (0.4,), "input_size": (1, 28, 28),
                          "file": "/somewhere/else.safetensors"}
    conv = to_grouped(src, "gc2l", 1, "optimal")  # no registered name wrn16_2_gc2l_n1: built from model_args
    assert conv.pretrained_cfg["architecture"] == "wrn16_2"
    assert conv.model_args["groups"] == 1 and conv.model_args["conv_type"] == "gc2l"
    assert conv.pretrained_cfg["mean"] == (0.3,) and conv.pretrained_cfg["input_size"] == (1, 28, 28)
    assert "file" not in conv.pretrained_cfg or conv.pretrained_cfg["file"] != "/somewhere/else.safetensors"


def test_mobilenetv2_head_stays_gc():
    src = randomize(tglc_zoo.create_model("mobilenetv2", num_classes=3))
    conv = to_grouped(src, "gc2l", 2, "optimal")
    rep = {r.name: r for r in conv.conversion_report}
    assert rep["conv_head.conv"].conv_type == "gc"
    assert rep["conv_head.conv"].relative_error == rep["conv_head.conv"].relative_block_jacobi_error
    block = [r for r in conv.conversion_report if r.conv_type == "gc2l"]
    assert len(block) == 33 and all(r.relative_error < r.relative_block_jacobi_error for r in block)
    src_sd = src.state_dict()
    dw = [k for k in src_sd if "conv_dw.conv" in k]
    assert dw and all(torch.equal(conv.state_dict()[k], src_sd[k]) for k in dw)


def test_bad_arguments(dense_wrn):
    with pytest.raises(ValueError, match=r"'flgc'.*\['gc', 'gc2l'\]"):
        to_grouped(dense_wrn, "flgc", 2)
    with pytest.raises(ValueError, match=r"'lsq'.*\['block_jacobi', 'optimal'\]"):
        to_grouped(dense_wrn, "gc2l", 2, "lsq")
    with pytest.raises(ValueError, match="calibration_data is only used by method='optimal'"):
        to_grouped(dense_wrn, "gc2l", 2, "block_jacobi", calibration_data=images())
    with pytest.raises(ValueError, match=r"groups=3 does not divide"):
        to_grouped(dense_wrn, "gc2l", 3)
    grouped = tglc_zoo.create_model("wrn16_2_gc_n2", num_classes=3, in_chans=1)
    with pytest.raises(ValueError, match=r"conv_type 'sc'.*'gc'"):
        to_grouped(grouped, "gc2l", 2)
    with pytest.raises(TypeError, match="calibration batches must be"):
        to_grouped(dense_wrn, "gc2l", 2, "optimal", calibration_data=["not an image"])


def test_recalibrate_batchnorm_matches_the_data_statistics(dense_wrn):
    from tglc_zoo.convert import recalibrate_batchnorm

    conv = to_grouped(dense_wrn, "gc2l", 2, "block_jacobi")
    x = images(batch=16, seed=4)
    recalibrate_batchnorm(conv, x, batch_size=16)  # one batch: the exact statistics
    assert not conv.training
    # the first BN of the first block normalises the stem's output: its statistics over all 16 images
    with torch.no_grad():
        feats = conv.stem(x)
    bn = conv.stages[0][0].bn1
    torch.testing.assert_close(bn.running_mean, feats.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, feats.var(dim=(0, 2, 3), unbiased=True), rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.1
    with pytest.raises(ValueError, match="no BatchNorm"):
        recalibrate_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), x)
