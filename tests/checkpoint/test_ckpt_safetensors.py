import pickle
import zipfile

import pytest
import torch

from tglc_zoo.checkpoint import (
    CheckpointNotFoundError,
    ConfigError,
    CorruptCheckpointError,
    load_weights,
    read_metadata_config,
    save_weights,
)
from tglc_zoo.checkpoint.safetensors_io import METADATA_KEY


def test_round_trip_with_config_in_metadata(tmp_path, tensors, cfg_dict):
    path = tmp_path / "model.safetensors"
    save_weights(path, tensors, cfg_dict)
    back = load_weights(path)
    assert back.keys() == tensors.keys()
    for k in tensors:
        assert torch.equal(back[k], tensors[k]) and back[k].dtype == tensors[k].dtype
    assert read_metadata_config(path) == cfg_dict


def test_plain_safetensors_has_no_config(tmp_path, tensors):
    save_weights(tmp_path / "w.safetensors", tensors)
    assert read_metadata_config(tmp_path / "w.safetensors") is None


def test_shared_and_strided_tensors_are_saved_as_values(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    save_weights(tmp_path / "w.safetensors", {"a": base, "b": base, "t": base.t()})
    back = load_weights(tmp_path / "w.safetensors")
    assert torch.equal(back["a"], base) and torch.equal(back["b"], base) and torch.equal(back["t"], base.t())


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -3])
def test_truncated_file_is_a_clear_error(tmp_path, tensors, cfg_dict, keep):
    path = tmp_path / "model.safetensors"
    save_weights(path, tensors, cfg_dict)
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(CorruptCheckpointError, match="truncated|too short"):
        load_weights(path)


def test_pickle_is_not_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CorruptCheckpointError, match="pickle"):
        load_weights(path)


def test_torch_zip_is_not_safetensors(tmp_path, tensors):
    path = tmp_path / "model.safetensors"
    torch.save(tensors, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CorruptCheckpointError, match="zip archive"):
        load_weights(path)


def test_text_file_is_not_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_text("hello, this is not a checkpoint at all" * 3)
    with pytest.raises(CorruptCheckpointError, match="not a safetensors file"):
        load_weights(path)


def test_corrupt_metadata_config_is_named(tmp_path, tensors):
    from safetensors.torch import save_file

    save_file(tensors, tmp_path / "m.safetensors", metadata={METADATA_KEY: "{broken"})
    with pytest.raises(ConfigError, match="safetensors metadata.*not valid JSON"):
        read_metadata_config(tmp_path / "m.safetensors")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no weights file"):
        load_weights(tmp_path / "nope.safetensors")


def test_saved_weights_are_readable_by_others(tmp_path):
    import os

    import torch

    from tglc_zoo.checkpoint.safetensors_io import save_weights

    path = tmp_path / "w.safetensors"
    old = os.umask(0o022)
    try:
        save_weights(path, {"a": torch.zeros(2)})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
