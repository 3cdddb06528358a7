"""Bad checkpoints through the public API: a clear error, nothing executed, nothing lost."""
import os
import shutil

import pytest
import torch
from ckpt_helpers import make_model

import tglc_zoo
from tglc_zoo.checkpoint import (
    CheckpointNotFoundError,
    ConfigError,
    CorruptCheckpointError,
    HashMismatchError,
    UnsafeCheckpointError,
)
from tglc_zoo.util.hashing import sha256_file

NAME = "wrn16_2_gc_n2"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def folder(tmp_path):
    return tglc_zoo.save_pretrained(make_model(NAME), tmp_path / "ck")


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_truncated_weights(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    before = _snapshot(folder)
    with pytest.raises(CorruptCheckpointError, match="truncated safetensors"):
        tglc_zoo.from_pretrained(folder)
    with pytest.raises(CorruptCheckpointError, match="truncated safetensors"):
        tglc_zoo.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)))
    assert _snapshot(folder) == before


def test_not_safetensors(folder):
    (folder / "model.safetensors").write_bytes(b"<html>404 Not Found</html>" * 10)
    with pytest.raises(CorruptCheckpointError, match="not a safetensors file"):
        tglc_zoo.from_pretrained(folder)


def test_pickle_with_payload_never_runs(folder, tmp_path):
    marker = tmp_path / "payload-ran"
    (folder / "model.safetensors").unlink()
    torch.save({"fc.weight": torch.zeros(3), "x": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="nothing in it was executed"):
        tglc_zoo.from_pretrained(folder)
    with pytest.raises(UnsafeCheckpointError):
        tglc_zoo.create_model(NAME, pretrained=folder / "pytorch_model.bin")
    assert not marker.exists()


def test_legacy_tensor_checkpoint_loads(folder, tmp_path):
    ref = tglc_zoo.from_pretrained(folder)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(folder / "config.json", legacy)
    torch.save(ref.state_dict(), legacy / "pytorch_model.bin")
    model = tglc_zoo.from_pretrained(legacy)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))


def test_wrong_sha256_in_url_name(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    good = folder / f"w-{sha256_file(folder / 'model.safetensors')[:8]}.safetensors"
    bad = folder / "w-deadbeef.safetensors"
    shutil.copy(folder / "model.safetensors", good)
    shutil.copy(folder / "model.safetensors", bad)
    assert tglc_zoo.from_pretrained(good.as_uri()).num_classes == 3
    with pytest.raises(HashMismatchError, match="deadbeef"):
        tglc_zoo.from_pretrained(bad.as_uri())
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / bad.name).exists()


def test_missing_files(folder, tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="not an existing folder"):
        tglc_zoo.from_pretrained(tmp_path / "nowhere")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"holds no weights file.*config\.json"):
        tglc_zoo.from_pretrained(folder)


def test_config_json_and_metadata_disagree(folder):
    import json

    cfg = json.loads((folder / "config.json").read_text())
    cfg["architecture"] = "wrn16_2_gc_n4"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"disagree \(architecture: 'wrn16_2_gc_n4' vs 'wrn16_2_gc_n2'\)"):
        tglc_zoo.from_pretrained(folder)


def test_bad_pretrained_argument():
    with pytest.raises(ValueError, match="pretrained=3.5 is not understood"):
        tglc_zoo.create_model(NAME, pretrained=3.5)
