"""Atomic folder writes: a writer killed with SIGKILL mid-save leaves the previous folder loadable."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import tglc_zoo
from tglc_zoo.checkpoint import (
    CheckpointError,
    read_state_dict,
    render_model_card,
    resolve_source,
    write_checkpoint_folder,
)
from tglc_zoo.util.atomic import atomic_directory

# The child writes a new checkpoint over `target`; at the chosen moment it announces itself
# on stdout and blocks, and the test kills it with SIGKILL.
_CHILD = textwrap.dedent("""
    import os, shutil, sys, time, torch
    from tglc_zoo.checkpoint import write_checkpoint_folder, render_model_card
    target, stage, cfg = sys.argv[1], sys.argv[2], eval(sys.argv[3])

    def block(*args, **kwargs):
        print("BLOCKED", flush=True)
        time.sleep(600)

    if stage == "writing":        # files are being written into the temporary folder
        import tglc_zoo.checkpoint.folder as f
        real = f.write_config
        f.write_config = lambda *a: (real(*a), block())
    elif stage == "swapped":      # new folder in place, old contents not yet deleted
        shutil.rmtree = block
    sd = {"w": torch.full((64, 64), 2.0)}
    write_checkpoint_folder(target, sd, cfg, render_model_card(cfg))
""")


def _save(path, value, cfg):
    return write_checkpoint_folder(path, {"w": torch.full((64, 64), value)}, cfg, render_model_card(cfg))


def _siblings(path: Path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


@pytest.mark.parametrize("stage,expected", [("writing", 1.0), ("swapped", 2.0)])
def test_killed_writer_leaves_a_complete_folder(tmp_path, cfg_dict, stage, expected):
    target = tmp_path / "ckpt"
    _save(target, 1.0, cfg_dict)
    env = dict(os.environ, PYTHONPATH=str(Path(tglc_zoo.__file__).parents[1]))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(target), stage, repr(cfg_dict)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline()
        assert line.strip() == "BLOCKED", child.stderr.read()
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    leftovers = _siblings(target)
    assert len(leftovers) == 1 and ".partial-" in leftovers[0]  # the dead writer's temporary folder
    r = resolve_source(target)
    assert r.config == cfg_dict
    assert torch.equal(read_state_dict(r)["w"], torch.full((64, 64), expected))
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    _save(target, 3.0, cfg_dict)  # the next save clears the dead writer's leftovers
    assert _siblings(target) == []
    assert torch.equal(read_state_dict(resolve_source(target))["w"], torch.full((64, 64), 3.0))


def test_failed_write_keeps_previous_and_cleans_up(tmp_path, cfg_dict):
    target = tmp_path / "ckpt"
    _save(target, 1.0, cfg_dict)
    with pytest.raises(TypeError, match="not a tensor"):
        write_checkpoint_folder(target, {"w": [1, 2]}, cfg_dict, "card")
    assert _siblings(target) == []
    assert torch.equal(read_state_dict(resolve_source(target))["w"], torch.full((64, 64), 1.0))


def test_refuses_to_replace_a_folder_with_other_files(tmp_path, cfg_dict):
    target = tmp_path / "home"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match=r"thesis\.tex"):
        _save(target, 1.0, cfg_dict)
    assert (target / "thesis.tex").read_text() == "precious"


def test_backup_of_a_writer_killed_between_renames_is_restored(tmp_path):
    """Where RENAME_EXCHANGE is unavailable the swap is two renames; a death between them is repaired."""
    target = tmp_path / "ckpt"
    backup = tmp_path / ".ckpt.old-999999999-0123abcd"  # no such pid
    backup.mkdir()
    (backup / "config.json").write_text("{}")
    with atomic_directory(target, replaceable=("config.json",)) as tmp:
        assert not target.exists() or (target / "config.json").read_text() == "{}"
        (tmp / "config.json").write_text('{"new": 1}')
    assert (target / "config.json").read_text() == '{"new": 1}'
    assert _siblings(target) == []


def test_two_rename_fallback(tmp_path, monkeypatch):
    import tglc_zoo.util.atomic as atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # as on a platform without renameat2
    target = tmp_path / "ckpt"
    for text in ("one", "two"):
        with atomic_directory(target, replaceable=("f",)) as tmp:
            (tmp / "f").write_text(text)
    assert (target / "f").read_text() == "two" and _siblings(target) == []
