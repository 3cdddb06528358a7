"""Group × data parallelism on the (data, group) mesh: exact against one process; sharded checkpoints."""
from __future__ import annotations

import io
import os
import pickle
import shutil
from pathlib import Path

import mesh_workers
import pytest
import torch

from tglc_zoo.distributed.launch import launch
from tglc_zoo.distributed.mesh import check_layout
from tglc_zoo.distributed.sharded_checkpoint import read_full_tensors, read_metadata
from tglc_zoo.errors import GroupParallelError, UnsafeCheckpointError

pytestmark = pytest.mark.slow


def test_world_sizes_must_be_multiples_of_the_groups() -> None:
    assert check_layout(8, 4) == (2, 4) and check_layout(2, 2) == (1, 2) and check_layout(3, 1) == (3, 1)
    with pytest.raises(GroupParallelError, match=r"world size 6 is not a multiple of the model's groups=4.*"
                                                 r"valid world sizes: 4, 8, 12, 16"):
        check_layout(6, 4)


@pytest.mark.parametrize("data, groups", [(2, 2), (1, 2), (2, 1)])
def test_float64_sgd_steps_equal_the_single_process_steps(data: int, groups: int) -> None:
    results = launch(mesh_workers.sgd_step, data * groups, (groups, 2), timeout=240, pg_timeout=60)
    for r in results:
        assert r.value["init"] == 0.0  # meta build + replay: the very weights of the same seed
        assert r.value["after"] < 1e-13, (data, groups, r.rank, r.value["after"])
        # each rank holds 1/N of the parameters (the classifier and stem bias are the replicated rest)
        assert r.value["params"] <= r.value["full_params"] / groups * 1.01 + 1000
        assert r.value["allreduces"] == (2 if data > 1 else 0)  # one bucket per step, only across replicas
    layout = results[-1].value["layout"]
    if (data, groups) == (2, 2):
        assert "replica 1: ranks [2, 3]" in layout and "gradient all-reduce of group rank 1: ranks [1, 3]" in layout


def _maxdiff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_sharded_checkpoint_resumes_exactly_and_on_another_data_degree(tmp_path: Path) -> None:
    folder = tmp_path / "step-2"
    saved = launch(mesh_workers.sharded_resume, 4, (2, str(folder), "save"), timeout=240, pg_timeout=60)[0].value
    files = sorted(p.name for p in folder.iterdir())
    assert files == [".metadata", "__0_0.distcp", "__1_0.distcp", "__2_0.distcp", "__3_0.distcp"]
    assert not (tmp_path / "step-2.partial").exists()

    # the same mesh: bit for bit what the uninterrupted run computed
    same = launch(mesh_workers.sharded_resume, 4, (2, str(folder), "load"), timeout=240, pg_timeout=60)
    assert _maxdiff(same[0].value["at2"][0], saved["at2"][0]) == 0.0
    assert _maxdiff(same[0].value["at4"], saved["at4"]) == 0.0
    assert [r.value["rng"]["marker"] for r in same] == [[0], [1], [2], [3]]  # every rank's own tensors

    # one replica (D = 1): the saved state loads whole; two more steps equal one process's on whole batches
    one = launch(mesh_workers.sharded_resume, 2, (2, str(folder), "load"), timeout=240, pg_timeout=60)
    assert _maxdiff(one[0].value["at2"][0], saved["at2"][0]) == 0.0
    momentum = {i: s["momentum_buffer"] for i, s in saved["at2"][1]["state"].items()}
    assert _maxdiff({str(i): s["momentum_buffer"] for i, s in one[0].value["at2"][1]["state"].items()},
                    {str(i): v for i, v in momentum.items()}) == 0.0
    expected = mesh_workers.continue_single(saved["at2"], 2, start=2, steps=2)
    assert _maxdiff(one[0].value["at4"], expected) < 1e-12

    # offline conversion: the single-process state dict, in one process without a process group
    full = read_full_tensors(folder, "model.")
    assert _maxdiff(full, saved["at2"][0]) == 0.0


def test_metadata_is_read_without_running_pickled_code(tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    pickle.dump(Payload(), buf)
    (folder / ".metadata").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        read_metadata(folder)
    assert not marker.exists()
    shutil.rmtree(folder)


def test_pretrained_weights_are_read_by_slices(tmp_path: Path) -> None:
    from tglc_zoo.checkpoint.safetensors_io import save_weights

    torch.manual_seed(5)
    save_weights(tmp_path / "w.safetensors", mesh_workers._model(2).state_dict())
    for r in launch(mesh_workers.sliced_weights, 4, (str(tmp_path / "w.safetensors"),), timeout=240, pg_timeout=60):
        assert r.value["diff"] == 0.0


def test_a_tags_weights_are_found_for_a_sharded_run() -> None:
    from tglc_zoo.data import get_dataset_info
    from tglc_zoo.training.build import pretrained_weights_for

    info = get_dataset_info("fmnist")
    path = pretrained_weights_for("wrn16_2_gc2l_n8.fmnist", info, {})
    assert path is not None and path.name == "model.safetensors" and path.parent.name == "wrn16_2_gc2l_n8.fmnist"
    assert pretrained_weights_for("wrn16_2_gc2l_n8.fmnist", get_dataset_info("cifar100"), {}) is None  # new head, stem
