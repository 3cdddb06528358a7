"""Our models reproduce every parameter count printed in the paper's Tables 1–4."""
import pytest
import torch
import torchvision

import tglc_zoo
from tglc_zoo.param_counts import count_params, param_rows


@pytest.fixture(scope="module")
def rows():
    return param_rows(with_deployed=False)


def test_all_34_sc_gc_gc2l_counts_match(rows):
    main = [r for r in rows if r.conv_type in ("sc", "gc", "gc2l")]
    assert len(main) == 34
    bad = [(r.table, r.arch, r.conv_type, r.groups, r.paper_m, r.ours) for r in main if not r.ok]
    assert not bad


def test_shuffle_rows_match_and_equal_gc(rows):
    shuffle = [r for r in rows if r.conv_type == "shuffle"]
    assert len(shuffle) == 11  # Tables 3 (WRN-28-10, WRN-34-2) and 4 (MobileNetV2)
    assert all(r.ok for r in shuffle)
    gc = {(r.arch, r.groups): r.ours for r in rows if r.conv_type == "gc"}
    assert all(r.ours == gc[(r.arch, r.groups)] for r in shuffle)


def test_exact_reference_counts():
    assert count_params("wrn28_10", "sc", 1, 10) == 36_479_194
    assert count_params("mobilenetv2", "sc", 1, 1000) == 3_504_872
    assert count_params("wrn28_80", "sc", 1, 10) == 2_331_843_034  # counted on the meta device
    tv = torchvision.models.mobilenet_v2()
    assert count_params("mobilenetv2", "sc", 1, 1000) == sum(p.numel() for p in tv.parameters())


def test_counts_are_checked_not_assumed(rows):
    # a wrong rule (e.g. coarse level on MobileNetV2's final conv too) must not match the paper
    from tglc_zoo.models import MobileNetV2
    with torch.device("meta"):
        m = MobileNetV2("gc2l", 8)
        m.conv_head.conv = tglc_zoo.create_conv("gc2l", 320, 1280, 1, groups=8)
    wrong = sum(p.numel() for p in m.parameters())
    assert round(wrong / 1e6, 2) != 1.72


def test_flgc_training_form_counts_dense_plus_logits():
    n_dense = count_params("wrn16_2", "sc", 1, 10)
    n_flgc = count_params("wrn16_2", "flgc", 4, 10)
    with torch.device("meta"):
        model = tglc_zoo.create_model("wrn16_2_flgc_n4")
    logits = sum(m.in_assign.numel() + m.out_assign.numel() for m in model.modules() if hasattr(m, "in_assign"))
    assert n_flgc == n_dense + logits
    deployed = tglc_zoo.deploy(tglc_zoo.create_model("wrn16_2_flgc_n4"))
    assert sum(p.numel() for p in deployed.parameters()) == count_params("wrn16_2", "gc", 4, 10)


def test_param_table_script_exits_zero(capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).parents[2] / "scripts" / "param_table.py"
    spec = importlib.util.spec_from_file_location("param_table", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--no-deployed"]) == 0
    out = capsys.readouterr().out
    assert "45/45 comparable counts match the paper" in out and "✗" not in out
