"""Atomic replacement of a whole folder.

:func:`atomic_directory` hands out a fresh hidden sibling of the target folder; when the ``with``
block ends without error its files are fsynced and it takes the target's place in one step
(Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames with a recoverable backup). A writer
killed at any point therefore leaves either the previous folder or the new one, complete — never a
mix — and its leftovers are cleared (or, for a backup, restored) by the next save.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from .errors import CheckpointError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):  # fs without directory fsync
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            _fsync_path(path)
    _fsync_path(root)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the platform or filesystem cannot."""
    if not sys.platform.startswith("linux"):
        return False
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2(RENAME_EXCHANGE) of {a} and {b} failed: {os.strerror(err)}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def recover_leftovers(directory: Path) -> None:
    """Clear what a killed writer left beside ``directory``; restore its backup if the target is gone."""
    parent = directory.parent
    if not parent.is_dir():
        return
    for entry in sorted(parent.iterdir()):
        m = _LEFTOVER.match(entry.name)
        if not m or m["name"] != directory.name or _pid_alive(int(m["pid"])):
            continue
        if m["kind"] == "old" and not directory.exists():
            os.rename(entry, directory)  # the writer died between its two renames: put the old folder back
        else:
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(directory: str | Path, *, replaceable: Collection[str]) -> Iterator[Path]:
    """Write a folder elsewhere, then swap it in for ``directory`` in one step.

    Args:
        directory: the folder to create or replace.
        replaceable: file names an existing ``directory`` may hold; a folder holding anything else
            is refused (so a mistyped path never deletes unrelated files).

    Yields:
        An empty temporary folder beside ``directory`` to write the new contents into.
    """
    directory = Path(directory).absolute()
    if directory.exists():
        if not directory.is_dir():
            raise CheckpointError(f"{directory} exists and is not a folder")
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in replaceable)
        if foreign:
            raise CheckpointError(f"{directory} holds files that are not part of a checkpoint: {foreign}; "
                                  f"save into a new folder or one holding only {sorted(replaceable)}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    recover_leftovers(directory)
    stamp = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = directory.parent / f".{directory.name}.partial-{stamp}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if not directory.exists():
            os.rename(tmp, directory)
        elif _exchange(tmp, directory):
            shutil.rmtree(tmp)  # now holds the previous contents
        else:
            backup = directory.parent / f".{directory.name}.old-{stamp}"
            os.rename(directory, backup)
            os.rename(tmp, directory)
            shutil.rmtree(backup)
        _fsync_path(directory.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
