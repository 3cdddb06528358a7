"""The GC-2L tuner pins a measured implementation per layer, changes no result, and caches per machine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tglc_zoo import create_model
from tglc_zoo.layers import TwoLevelGroupConv2d, autotune
from tglc_zoo.layers import gc2l_tuner as autotune_module
from tglc_zoo.layers.gc2l_impl import KERNEL_IMPLS

FAST = dict(rounds=1, min_time=0.0)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TGLC_ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "gc2l_autotune.json"


@pytest.fixture
def timed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every layer shape the tuner times (the real timing still runs)."""
    calls: list[str] = []
    real = autotune_module._time_impls

    def counting(call, impls, rounds, min_time):  # type: ignore[no-untyped-def]
        calls.append(call.key())
        return real(call, impls, rounds, min_time)

    monkeypatch.setattr(autotune_module, "_time_impls", counting)
    return calls


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("wrn16_2_gc2l_n2").train()


def _x() -> torch.Tensor:
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_every_auto_layer_is_pinned_and_nothing_else_changes(cache: Path, timed: list[str]) -> None:
    model, ref = _model(), _model()
    x = _x()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    chosen = autotune(model, x, **FAST)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, TwoLevelGroupConv2d)}
    assert set(chosen) == set(layers) and set(chosen.values()) <= set(KERNEL_IMPLS)
    assert all(layers[n].impl == impl for n, impl in chosen.items())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert torch.equal(torch.get_rng_state(), rng)
    torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)  # every impl is the same operator
    assert len(timed) == len(set(timed)) < len(layers)  # each distinct layer timed once; repeated ones share it


def test_the_cache_is_used_and_gives_the_same_choices(cache: Path, timed: list[str]) -> None:
    first = autotune(_model(), _x(), **FAST)
    n = len(timed)
    assert n > 0 and cache.is_file()
    second = autotune(_model(), _x(), **FAST)
    assert second == first and len(timed) == n  # nothing timed again: a run is deterministic after the first


def test_another_machine_key_or_layer_is_timed_again(cache: Path, timed: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    autotune(_model(), _x(), **FAST)
    n = len(timed)
    monkeypatch.setattr(autotune_module, "machine_key", lambda device: "another CPU; torch 9.9")
    autotune(_model(), _x(), **FAST)
    assert len(timed) == 2 * n
    keys = json.loads(cache.read_text())["machines"]
    assert len(keys) == 2  # the first machine's choices are kept for it
    with torch.no_grad():  # inference is its own key
        autotune(_model(), _x(), **FAST)
    assert len(timed) == 3 * n


def test_a_damaged_cache_is_reported_and_rewritten(cache: Path, timed: list[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    cache.parent.mkdir(parents=True)
    for damage in ("{not json", json.dumps({"format": "other", "machines": {}}), json.dumps([1, 2])):
        cache.write_text(damage)
        with caplog.at_level("WARNING"):
            assert autotune(_model(), _x(), **FAST)
        assert "is damaged" in caplog.text
        assert json.loads(cache.read_text())["format"] == autotune_module.CACHE_FORMAT


def test_pinned_layers_and_bad_choices(cache: Path, timed: list[str]) -> None:
    model = _model()
    for m in model.modules():
        if isinstance(m, TwoLevelGroupConv2d):
            m.impl = "split"
    assert autotune(model, _x(), **FAST) == {} and timed == []
    with pytest.raises(ValueError, match=r"impls=\['magic'\]; valid choices"):
        autotune(_model(), _x(), impls=["magic"])
    assert autotune(_model(), _x(), impls=["addmm"], cache=False, **FAST) and not cache.exists()


def test_the_trainer_tunes_before_training(cache: Path, tmp_path: Path) -> None:
    from tglc_zoo.training import TrainConfig, train

    logs: list[str] = []
    train(TrainConfig(model="wrn16_2_gc2l_n2", dataset="digits", output=str(tmp_path / "run"), epochs=1,
                      batch_size=32, limit_train_batches=1, limit_val_batches=1, autotune=True, progress=False,
                      tensorboard=False), log=logs.append)
    assert any(line.startswith("[train] --autotune pinned 15 GC-2L layers") for line in logs)
    assert cache.is_file()
