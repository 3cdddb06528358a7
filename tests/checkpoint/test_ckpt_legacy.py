import os
import pickle

import pytest
import torch

from tglc_zoo.checkpoint import CorruptCheckpointError, UnsafeCheckpointError, load_legacy_state_dict


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tensor_state_dict_loads(tmp_path, tensors):
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    back = load_legacy_state_dict(tmp_path / "pytorch_model.bin")
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


def test_wrapped_state_dict_is_unwrapped(tmp_path, tensors):
    torch.save({"state_dict": tensors, "epoch": 3}, tmp_path / "ckpt.pth")
    assert load_legacy_state_dict(tmp_path / "ckpt.pth").keys() == tensors.keys()


@pytest.mark.parametrize("how", ["torch.save", "pickle.dumps"])
def test_payload_is_refused_and_never_runs(tmp_path, tensors, how):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.pth"
    if how == "torch.save":
        torch.save(dict(tensors, evil=_Payload(marker)), path)
    else:
        path.write_bytes(pickle.dumps({"evil": _Payload(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"model\.pth.*GLOBAL.*system.*nothing in it was executed"):
        load_legacy_state_dict(path)
    assert not marker.exists()
    # the payload is real: an unrestricted unpickler would run it
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_non_tensor_entries_are_refused(tmp_path):
    torch.save({"a": torch.zeros(1), "b": [1, 2]}, tmp_path / "x.pth")
    with pytest.raises(CorruptCheckpointError, match=r"not tensors: \['b'\]"):
        load_legacy_state_dict(tmp_path / "x.pth")


def test_garbage_and_wrong_suffix(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"\x00garbage")
    with pytest.raises(CorruptCheckpointError, match="x.pth"):
        load_legacy_state_dict(tmp_path / "x.pth")
    (tmp_path / "x.ckpt").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match=r"\.pth"):
        load_legacy_state_dict(tmp_path / "x.ckpt")
