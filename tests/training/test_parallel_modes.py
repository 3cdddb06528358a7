"""Parallel modes are registered by name whatever the import order, and the trainer talks to them only
through the ParallelMode contract."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_GROUP_THROUGH_TRAIN = """
{first}
from tglc_zoo.errors import GroupParallelError
from tglc_zoo.training import PARALLEL_MODES, TrainConfig, train
print(sorted(PARALLEL_MODES))
try:
    train(TrainConfig(model="wrn16_2_gc2l_n2", dataset="digits", output="{out}", parallel="group", epochs=1,
                      limit_train_batches=1, progress=False, tensorboard=False), log=lambda m: None)
except GroupParallelError as e:
    print("group mode reached:", e)
"""


@pytest.mark.parametrize("first", ["import tglc_zoo.distributed", "import tglc_zoo.training", "import tglc_zoo",
                                   "pass"])
def test_group_mode_is_available_in_a_fresh_process_whatever_was_imported_first(first: str, tmp_path: Path) -> None:
    code = _GROUP_THROUGH_TRAIN.format(first=first, out=tmp_path / "run")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "['data', 'group']"
    # the group mode itself ran: alone, it asks for one process per group (torchrun --nproc_per_node 2)
    assert lines[1].startswith("group mode reached:") and "--nproc_per_node 2" in lines[1]


def test_a_registered_mode_is_used_through_the_contract(tmp_path: Path) -> None:
    import torch

    from tglc_zoo.distributed import DataParallelMode, ParallelMode
    from tglc_zoo.training import PARALLEL_MODES, TrainConfig, register_parallel_mode, train

    calls: list[str] = []

    class Recording(DataParallelMode):
        name = "recording"

        def wrap(self, model, ctx):  # type: ignore[no-untyped-def]
            calls.append("wrap")
            return super().wrap(model, ctx)

        def training_state(self, net, model, optimizer):  # type: ignore[no-untyped-def]
            calls.append("training_state")
            return super().training_state(net, model, optimizer)

    register_parallel_mode(Recording())
    try:
        cfg = TrainConfig(model="wrn16_2", dataset="digits", output=str(tmp_path / "r"), parallel="recording",
                          epochs=2, batch_size=64, limit_train_batches=2, limit_val_batches=1, progress=False,
                          tensorboard=False)
        train(cfg, log=lambda m: None)
        assert calls == ["wrap", "training_state", "training_state"]  # once per epoch, on every rank
        assert isinstance(PARALLEL_MODES["recording"], ParallelMode)
        ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["config"]["parallel"] == "recording"
    finally:
        PARALLEL_MODES.pop("recording", None)
    with pytest.raises(TypeError, match="named ParallelMode instance"):
        register_parallel_mode(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown parallel mode 'nope'.*valid choices"):
        train(TrainConfig(model="wrn16_2", dataset="digits", output=str(tmp_path / "x"), parallel="nope"))
