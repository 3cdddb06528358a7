"""A model built on the meta device and replayed one tensor at a time gets the single-process values, bit for bit."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tglc_zoo import create_model
from tglc_zoo.distributed.deferred_init import NotReplayableError, deferred_build, materialize_empty


def _replayed(build) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:  # type: ignore[no-untyped-def]
    torch.manual_seed(11)
    model, record = deferred_build(build)
    assert all(t.is_meta for t in model.state_dict().values())  # nothing was allocated
    got: dict[str, torch.Tensor] = {}
    largest = 0

    def put(key: str, value: torch.Tensor) -> None:
        nonlocal largest
        assert key not in got, f"{key} delivered twice"
        got[key] = value.clone()
        largest = max(largest, value.numel())

    record.replay(put)
    return got, torch.get_rng_state(), largest


@pytest.mark.parametrize("name", ["wrn16_2_gc2l_n2", "wrn16_2_gc_n4", "wrn16_2", "wrn16_2_shuffle_n2",
                                  "mobilenetv2_gc2l_n2"])
def test_replay_equals_the_ordinary_build(name: str) -> None:
    torch.manual_seed(11)
    ref = create_model(name).state_dict()
    ref_rng = torch.get_rng_state()
    got, rng, _ = _replayed(lambda: create_model(name))
    assert list(got) != [] and set(got) == set(ref)
    for key, value in ref.items():
        assert torch.equal(got[key], value), key
    assert torch.equal(rng, ref_rng)  # the generator ends where the ordinary build leaves it


def test_replay_of_a_converted_timm_cnn() -> None:
    from tglc_zoo.convert import GroupingSpec, build_grouped, choose_convs
    from tglc_zoo.convert.base import build_base

    with torch.device("meta"):
        layers = tuple(c.name for c in choose_convs(build_base("resnet18", {"num_classes": 10}), 2) if c.replace)

    def build() -> nn.Module:  # the converted architecture of timm's ResNet-18, freshly initialised
        return build_grouped(GroupingSpec("resnet18", {"num_classes": 10}, "gc2l", 2, layers))

    torch.manual_seed(11)
    ref = build().state_dict()
    got, _, _ = _replayed(build)
    assert set(got) == set(ref) and all(torch.equal(got[k], v) for k, v in ref.items())


def test_only_one_full_tensor_lives_at_a_time() -> None:
    got, _, largest = _replayed(lambda: create_model("wrn16_2_gc2l_n2"))
    assert largest == max(v.numel() for v in got.values())


def test_values_computed_on_the_meta_device_are_refused() -> None:
    with pytest.raises(NotReplayableError, match="in_assign"):  # FLGC's logits are randn(...) * 1e-2
        _replayed(lambda: create_model("wrn16_2_flgc_n2"))

    class Viewed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3, 3))
            with torch.no_grad():
                self.w[0].fill_(1.0)  # a write into a view: not replayable one tensor at a time

    with pytest.raises(NotReplayableError, match="view of state tensor 'w'"):
        _replayed(Viewed)


def test_materialize_empty_keeps_ties() -> None:
    with torch.device("meta"):
        a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    root = nn.Sequential(a, b)
    materialize_empty(root)
    assert a.weight is b.weight and not a.weight.is_meta and not b.bias.is_meta
