"""A small folder cannot make tglc_zoo build something large: every hostile config is refused, on every route.

The folders are in ``hostile.py``; the bounds on time and memory are checked in
``test_hostile_resources.py``. What a config may ask for is in docs/loading.md.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from hostile import HOSTILE, OVER_LIMIT, ZOO_NAME, grouped, huge_config, make_all, self_referencing, write_folder, zoo

import tglc_zoo
from tglc_zoo.builder import Limits
from tglc_zoo.checkpoint import is_hf_repo_id
from tglc_zoo.errors import CheckpointNotFoundError, ConfigError, ModelArgumentError, TglcZooError

REPO = Path(__file__).resolve().parents[2]


def _pretrained_by_name(folder: Path) -> torch.nn.Module:
    name = ZOO_NAME if "zoo" in folder.name else "tglc_grouped"
    return tglc_zoo.create_model(name, pretrained=str(folder))


def _torch_hub(folder: Path) -> torch.nn.Module:
    return torch.hub.load(str(REPO), ZOO_NAME, source="local", pretrained=str(folder))


ROUTES = {
    "from_pretrained": lambda f: tglc_zoo.from_pretrained(f),
    "tglc_zoo.create_model local-dir": lambda f: tglc_zoo.create_model(f"local-dir:{f}", pretrained=True),
    "tglc_zoo.create_model local-dir, config only": lambda f: tglc_zoo.create_model(f"local-dir:{f}"),
    "timm.create_model local-dir": lambda f: timm.create_model(f"local-dir:{f}", pretrained=True),
    "timm.create_model local-dir, config only": lambda f: timm.create_model(f"local-dir:{f}"),
    "create_model(name, pretrained=folder)": _pretrained_by_name,
    "torch.hub.load": _torch_hub,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_all(tmp_path_factory.mktemp("hostile"))


# hubconf.py lists the zoo's names: torch.hub takes the zoo's folders
CASES = [(a, r) for a in sorted(HOSTILE) for r in sorted(ROUTES) if r != "torch.hub.load" or a.startswith("zoo")]


@pytest.mark.parametrize("attack,route", CASES)
def test_every_hostile_folder_is_refused_on_every_route(folders, attack, route):
    with pytest.raises(TglcZooError, match=HOSTILE[attack][1]):
        ROUTES[route](folders[attack])


@pytest.mark.parametrize("attack", ["zoo_classes_1e9", "zoo_classes_6e6", "grouped_in_chans_1e7",
                                    "grouped_hf_hub_base"])
def test_hub_routes_are_guarded_too(folders, hf_cache, attack):
    hf_cache(f"evil/{attack}", folders[attack])
    for load in (lambda: tglc_zoo.from_pretrained(f"evil/{attack}"),
                 lambda: tglc_zoo.create_model(f"hf-hub:evil/{attack}", pretrained=True),
                 lambda: tglc_zoo.create_model(f"hf-hub:evil/{attack}"),
                 lambda: timm.create_model(f"hf-hub:evil/{attack}", pretrained=True),
                 lambda: timm.create_model(f"hf-hub:evil/{attack}")):
        with pytest.raises(TglcZooError, match=HOSTILE[attack][1]):
            load()


def test_a_remote_base_is_not_fetched(tmp_path, local_hub):
    folder = write_folder(tmp_path / "remote", grouped("hf-hub:evil/base"))
    local_hub.serve_folder("evil/base", write_folder(tmp_path / "base", zoo()))
    with pytest.raises(ConfigError, match="trust_base=True"):
        tglc_zoo.from_pretrained(folder)
    assert local_hub.log.requests == []


def test_the_limit_can_be_raised_by_argument_and_environment(folders, tmp_path, monkeypatch):
    folder = folders["zoo_classes_1e9"]
    with pytest.raises(ConfigError, match=r"more than 3,000,000,000 parameters.*max_params= or \$TGLC_ZOO_MAX_PARAMS"):
        tglc_zoo.from_pretrained(folder)
    # raised: the meta build passes and the weights (no classifier) refuse it instead, still before allocating
    with pytest.raises(TglcZooError, match=r"does not fit wrn16_2_gc2l_n2: missing keys \(113\): \['fc.bias', 'fc.w"):
        tglc_zoo.from_pretrained(folder, max_params=2 * 10**11)
    monkeypatch.setenv("TGLC_ZOO_MAX_PARAMS", "2e11")
    with pytest.raises(TglcZooError, match=r"does not fit wrn16_2_gc2l_n2: missing keys \(113\)"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)
    # a legitimate checkpoint is refused by a limit below its size, and loads at its size
    legit = tglc_zoo.save_pretrained(tglc_zoo.create_model(ZOO_NAME, num_classes=3, in_chans=1), tmp_path / "ok")
    monkeypatch.setenv("TGLC_ZOO_MAX_PARAMS", "1000")
    with pytest.raises(ConfigError, match="more than 1,000 parameters"):
        tglc_zoo.from_pretrained(legit)
    assert tglc_zoo.from_pretrained(legit, max_params=10**6).num_classes == 3
    monkeypatch.setenv("TGLC_ZOO_MAX_MODULES", "10")
    with pytest.raises(ConfigError, match=r"more than 10 modules.*max_modules= or \$TGLC_ZOO_MAX_MODULES"):
        tglc_zoo.from_pretrained(legit, max_params=10**6)


def test_a_config_read_without_weights_is_bounded_by_the_weights_beside_it(tmp_path, folders):
    legit = tglc_zoo.save_pretrained(tglc_zoo.create_model(ZOO_NAME, num_classes=3, in_chans=1), tmp_path / "ok")
    assert timm.create_model(f"local-dir:{legit}").num_classes == 3
    assert timm.create_model(f"local-dir:{legit}", num_classes=5, in_chans=3).num_classes == 5  # asked-for head/stem
    # an architecture the caller chooses is the caller's: built, bounded by the limits only
    assert timm.create_model(f"local-dir:{legit}", conv_type="gc").model_args["conv_type"] == "gc"
    with pytest.raises(ConfigError, match=OVER_LIMIT):
        timm.create_model(f"local-dir:{folders['zoo_classes_1e9']}", drop_rate=0.1)


def test_limits_name_bad_values():
    with pytest.raises(ModelArgumentError, match=r"max_params='lots'.*valid: a positive integer"):
        Limits.resolve(max_params="lots")
    with pytest.raises(ModelArgumentError, match=r"trust_base='maybe'.*valid: true or false"):
        Limits.resolve(trust_base="maybe")
    assert Limits.resolve(max_params="5e9").max_params == 5_000_000_000


def test_self_reference_is_refused_with_and_without_trust(tmp_path):
    folder = self_referencing(tmp_path)
    with pytest.raises(ConfigError, match="remote or local model.*trust_base=True"):
        tglc_zoo.from_pretrained(folder)
    with pytest.raises(ConfigError, match=r"refers to itself \(.*self -> .*self\)"):
        tglc_zoo.from_pretrained(folder, trust_base=True)
    with pytest.raises(ConfigError, match="refers to itself"):
        timm.create_model(f"local-dir:{folder}", trust_base=True)


def test_a_cycle_through_two_folders_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_folder(a, grouped(f"local-dir:{b}"))
    write_folder(b, grouped(f"local-dir:{a}"))
    with pytest.raises(ConfigError, match=r"refers to itself \(.*a -> .*b -> .*a\)"):
        tglc_zoo.from_pretrained(a, trust_base=True)


@pytest.mark.parametrize("base_args,match", [
    ({"pretrained": True}, r"base_args \['pretrained'\]"),
    ({"pretrained_cfg_overlay": {"file": "x"}}, r"base_args \['pretrained_cfg_overlay'\]"),
    ({"act_layer": "/tmp/evil.py"}, r"base_args.act_layer='/tmp/evil.py'.*name a file, URL or repo"),
])
def test_a_base_spec_may_only_describe_an_architecture(tmp_path, base_args, match):
    folder = write_folder(tmp_path / "f", grouped(**base_args))
    with pytest.raises(ConfigError, match=match):
        tglc_zoo.from_pretrained(folder)


def test_a_base_that_is_no_model_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"base 'resnet_nonexistent' is not a registered model; valid: a timm"):
        tglc_zoo.from_pretrained(write_folder(tmp_path / "a", grouped("resnet_nonexistent")))
    with pytest.raises(ConfigError, match=r"base 'torchvision:nope' is not a torchvision model"):
        tglc_zoo.from_pretrained(write_folder(tmp_path / "b", grouped("torchvision:nope")))


def test_a_foreign_architecture_is_not_handed_to_timm(tmp_path):
    config = zoo()
    config.update(architecture="resnet50", model_args={"num_classes": 10**9})
    config["pretrained_cfg"]["architecture"] = "resnet50"
    folder = write_folder(tmp_path / "timm_arch", config)
    for load in (lambda: tglc_zoo.create_model(f"local-dir:{folder}"),
                 lambda: tglc_zoo.create_model(f"local-dir:{folder}", pretrained=True),
                 lambda: tglc_zoo.from_pretrained(folder)):
        with pytest.raises(ConfigError, match=r"names architecture 'resnet50', which tglc_zoo does not have"):
            load()


def test_a_huge_config_is_refused_unread(tmp_path, monkeypatch):
    folder = huge_config(tmp_path)
    for load in (lambda: tglc_zoo.from_pretrained(folder),
                 lambda: tglc_zoo.create_model(f"local-dir:{folder}"),
                 lambda: tglc_zoo.create_model(f"local-dir:{folder}", pretrained=True)):
        with pytest.raises(ConfigError, match=r"3,221,225,472 bytes of JSON, more than the 8,388,608.*"
                                              r"TGLC_ZOO_MAX_CONFIG_BYTES"):
            load()
    monkeypatch.setenv("TGLC_ZOO_MAX_CONFIG_BYTES", "100")
    legit = tglc_zoo.save_pretrained(tglc_zoo.create_model(ZOO_NAME, num_classes=3, in_chans=1), tmp_path / "ok")
    with pytest.raises(ConfigError, match="more than the 100 bytes"):
        tglc_zoo.from_pretrained(legit)


def test_a_repo_id_with_a_trailing_newline_is_not_one():
    assert not is_hf_repo_id("org/name\n") and not is_hf_repo_id("hf-hub:org/name\n") and is_hf_repo_id("org/name")
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at 'org/name\\n'"):
        tglc_zoo.from_pretrained("org/name\n")


def test_hf_hub_prefix_offline_says_offline(hf_cache):
    with pytest.raises(CheckpointNotFoundError, match=r"config.json of hf-hub:org/absent is not in the Hugging Face "
                                                      r"cache .*offline for the Hub \(HF_HUB_OFFLINE is set\)"):
        tglc_zoo.create_model("hf-hub:org/absent")
    with pytest.raises(CheckpointNotFoundError, match=r"model.safetensors of hf-hub:org/absent .*HF_HUB_OFFLINE"):
        tglc_zoo.create_model("hf-hub:org/absent", pretrained=True)


def test_limit_messages_say_nothing_was_allocated(folders):
    with pytest.raises(ConfigError) as err:
        tglc_zoo.from_pretrained(folders["zoo_in_chans_1e8"])
    assert OVER_LIMIT in str(err.value) and str(folders["zoo_in_chans_1e8"]) in str(err.value)
