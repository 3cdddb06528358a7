import json

import pytest

from tglc_zoo.checkpoint import ConfigError, make_config, read_config, validate_config, write_config


def test_config_round_trip_keeps_tuples(tmp_path, cfg_dict):
    write_config(tmp_path / "config.json", cfg_dict)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert list(raw)[:6] == ["architecture", "num_classes", "num_features", "global_pool", "model_args",
                             "pretrained_cfg"]
    back = read_config(tmp_path / "config.json")
    assert back == cfg_dict
    assert back["pretrained_cfg"]["input_size"] == (1, 12, 12)


def test_make_config_drops_where_the_weights_came_from(cfg_dict):
    pcfg = dict(cfg_dict["pretrained_cfg"], file="/old/place", hf_hub_id="org/x", url="https://x", source="hf-hub")
    cfg = make_config(architecture="wrn16_2", num_classes=5, num_features=128, global_pool="avg",
                      model_args=cfg_dict["model_args"], pretrained_cfg=pcfg)
    assert not {"file", "hf_hub_id", "url", "source"} & set(cfg["pretrained_cfg"])
    assert cfg["pretrained_cfg"]["num_classes"] == 5


@pytest.mark.parametrize("drop", ["architecture", "model_args", "pretrained_cfg", "num_classes"])
def test_missing_field_is_named(cfg_dict, drop):
    del cfg_dict[drop]
    with pytest.raises(ConfigError, match=drop):
        validate_config(cfg_dict, origin="x")


@pytest.mark.parametrize("key,value", [("num_classes", -1), ("num_classes", "10"), ("architecture", ""),
                                       ("model_args", [1])])
def test_bad_values_are_named(cfg_dict, key, value):
    cfg_dict[key] = value
    with pytest.raises(ConfigError, match=key):
        validate_config(cfg_dict, origin="x")


def test_invalid_json_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json.*not valid JSON"):
        read_config(tmp_path / "config.json")
