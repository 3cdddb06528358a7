"""The benchmark's bookkeeping (no timing here: benchmarks are not tests)."""
import dataclasses
import importlib
import json

import torch

from benchmarks.profiling import goals
from benchmarks.profiling.impl_table import best_impls, merge_into_table
from benchmarks.profiling.layer_bench import CANDIDATES, Setting, add_ratios, build, make_step
from benchmarks.profiling.shapes import grid_shapes


def test_wrn28_10_grid_has_every_conv_shape():
    labels = {s.label() for s in grid_shapes("wrn28_10")}
    assert labels == {"16->160 1x1 @32x32", "16->160 3x3 @32x32", "160->160 3x3 @32x32", "160->320 1x1/s2 @32x32",
                      "160->320 3x3/s2 @32x32", "320->320 3x3 @16x16", "320->640 1x1/s2 @16x16",
                      "320->640 3x3/s2 @16x16", "640->640 3x3 @8x8"}
    assert all(s.kernel_size == 1 for s in grid_shapes("mobilenetv2"))


def test_every_candidate_builds_and_steps():
    shape = grid_shapes("wrn28_10")[2]
    setting = Setting(torch.device("cpu"), "fp32", 1, 1, 0.01)
    x = torch.randn(1, shape.in_channels, 8, 8).contiguous(memory_format=torch.channels_last)
    for name in CANDIDATES:
        layer = build(name, shape, 4).to(memory_format=torch.channels_last)
        for mode in ("fwd", "fwdbwd"):
            assert make_step(layer, x, mode, setting)().shape == (1, shape.out_channels, 8, 8)


def test_candidates_are_the_conv_type_specs(monkeypatch):
    from benchmarks.profiling import candidates
    from tglc_zoo.layers import CONV_SPECS, GroupConv2d, create_conv
    from tglc_zoo.layers.gc2l_impl import KERNEL_IMPLS

    factory = importlib.import_module("tglc_zoo.layers.create_conv")  # the module (the package exports the function)

    shape = grid_shapes("wrn28_10")[2]
    assert {conv for conv, _, _ in CANDIDATES.values()} == set(CONV_SPECS)
    assert [c for c in CANDIDATES if c.startswith("gc2l:")] == [f"gc2l:{impl}" for impl in KERNEL_IMPLS]
    for name, (conv, _, deployed) in CANDIDATES.items():
        assert (type(build(name, shape, 4)) is CONV_SPECS[conv].layer) != deployed, name
    assert [c for c, (_, _, deployed) in CANDIDATES.items() if deployed] == ["flgc:deployed"]
    # a conv type added to the specs is a candidate, with nothing in the benchmarks changed

    class WideGroupConv2d(GroupConv2d):
        pass

    monkeypatch.setitem(CONV_SPECS, "wgc", dataclasses.replace(CONV_SPECS["gc"], name="wgc", layer=WideGroupConv2d))
    monkeypatch.setattr(factory, "CONV_TYPES", tuple(CONV_SPECS))
    candidates.has_deployed_form.cache_clear()
    assert candidates._candidates()["wgc"] == ("wgc", {}, False)
    assert type(create_conv("wgc", 8, 8, 3, groups=2)) is WideGroupConv2d
    candidates.has_deployed_form.cache_clear()


def _row(conv, t, flops, **kw):
    base = dict(grid="wrn28_10", shape="s", in_channels=16, out_channels=16, kernel_size=3, stride=1, hw_out=64,
                groups=4, layout="channels_last", mode="fwdbwd", dtype="fp32", device="cpu", load_average=1.0)
    return dict(base, conv=conv, time_ms=t, flops=flops, **kw)


def test_ratios_goals_and_table(tmp_path):
    rows = [_row("sc", 10.0, 400), _row("gc", 2.0, 100), _row("gc2l:split", 3.0, 110), _row("gc2l:fused", 2.5, 110)]
    add_ratios(rows)
    fused = rows[3]
    assert fused["t/gc"] == 1.25 and fused["flops/gc"] == 1.1 and fused["t/sc"] == 0.25
    auto = dict(fused, conv="gc2l:auto")
    g = goals.layer_goals(rows + [auto])
    assert g["rows"] == 1 and g["every_row_met"] and not g["median_met"] and g["never_slower_than_sc_met"]
    best = best_impls(rows)
    assert [b["impl"] for b in best] == ["fused"] and best[0]["training"] and best[0]["channels_last"]
    path = tmp_path / "table.json"
    assert merge_into_table(best, "test", path) == 1
    assert merge_into_table(best, "test", path) == 1  # same key: replaced, not duplicated
    assert json.loads(path.read_text())["rows"][0]["impl"] == "fused"


def test_model_goal():
    rows = [dict(arch="wrn28_10", conv="gc2l", task="train", dtype="fp32", groups=4, **{"speedup/sc": 2.0,
                 "flops_sc/flops": 3.9})]
    (g,) = goals.model_goals(rows)
    assert not g["met"] and abs(g["needed_speedup"] - 0.6 * 3.9) < 1e-12


def test_rows_timed_under_foreign_load_are_refused() -> None:
    from benchmarks.profiling.impl_table import quiet_rows

    rows = [{"foreign_load": 0.05}, {"foreign_load": 0.9}, {"foreign_load": None}, {}]
    kept, refused = quiet_rows(rows, max_foreign=0.2)
    assert kept == [{"foreign_load": 0.05}] and len(refused) == 3


def test_foreign_load_counts_other_processes_not_this_one() -> None:
    import subprocess
    import sys
    import time

    from benchmarks.profiling.machine import ForeignLoad

    with ForeignLoad() as alone:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.3:  # this process's own work does not count
            pass
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with ForeignLoad() as shared:
            time.sleep(0.6)
    finally:
        busy.kill()
        busy.wait()
    assert alone.cores is not None and shared.cores is not None
    assert shared.cores > alone.cores + 0.5


def test_the_speedup_figure_is_drawn_from_the_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.profiling.model_bench import add_model_ratios
    from benchmarks.profiling.model_figure import plot_speedups

    rows = []
    for compiled in (False, True):
        for conv, n, ms, flops in (("sc", 1, 100.0, 8.0), ("gc", 4, 40.0, 2.0), ("gc2l", 4, 45.0, 2.2)):
            rows.append({"arch": "wrn28_10", "task": "train", "dtype": "fp32", "layout": "channels_last", "conv": conv,
                         "groups": n, "compiled": compiled, "time_ms": ms / (2 if compiled else 1),
                         "flops_per_image": flops})
    add_model_ratios(rows)
    gc2l = next(r for r in rows if r["conv"] == "gc2l" and r["compiled"])
    assert gc2l["speedup/sc"] == 100.0 / 45.0 and gc2l["flops_sc/flops"] == 8.0 / 2.2  # against compiled SC
    assert plot_speedups(rows, "wrn28_10", tmp_path / "f.png").stat().st_size > 1000
    assert plot_speedups(rows, "mobilenetv2", tmp_path / "none.png") is None
