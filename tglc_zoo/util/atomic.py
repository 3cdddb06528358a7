"""Atomic writes: a file (or a folder) is either the old one or the new one, complete — never half-written.

:func:`atomic_path` is the one primitive for files: it hands out a temporary path in the target's
folder; when the ``with`` block ends without error the file is fsynced and renamed over the target
(``os.replace``, atomic on POSIX), otherwise it is removed. :func:`atomic_write` and
:func:`atomic_write_json` are the common cases. :func:`atomic_directory` does the same for a whole
folder (a checkpoint).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_json", "atomic_directory", "fsync_path",
           "clear_stale_temporaries", "temporary_target"]

_TMP_MARK = ".tmp-"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-[A-Za-z0-9_]+(?P<suffix>\.[^.]*)?$")


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (where the platform allows directories to be opened)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):  # filesystems without directory fsync
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary name is ``.<name>.tmp-<random><suffix>`` (the suffix kept, so writers that infer a
    format from it, like matplotlib, still work); :func:`clear_stale_temporaries` removes those left
    by a killed process. A target that is a symlink is written through to the file it points to.
    """
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    if target.is_dir():
        raise IsADirectoryError(f"cannot write a file over the folder {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}{_TMP_MARK}", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer left nothing at the temporary path {tmp} for {target}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only; written files are normally readable
        fsync_path(tmp)
        os.replace(tmp, target)
        fsync_path(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding=encoding)
        else:
            tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """``json.dumps(obj)`` (strict: no NaN/Inf) plus a final newline, written atomically."""
    return atomic_write(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def temporary_target(name: str) -> str | None:
    """The file name an :func:`atomic_path` temporary called ``name`` was to replace, or None if it is not one."""
    m = _TEMPORARY.match(name)
    if m is None:
        return None
    target = m["name"]
    return target if (m["suffix"] or "") == Path(target).suffix else None


def clear_stale_temporaries(folder: str | os.PathLike[str]) -> None:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` when its writer was killed."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and _TMP_MARK in p.name and p.is_file():
                p.unlink(missing_ok=True)


# -- folders ----------------------------------------------------------------------------------------
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            fsync_path(p)
    fsync_path(root)


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
    except OSError:
        return True
    return True


def recover_leftovers(directory: Path) -> None:
    """Clear what a killed folder writer left beside ``directory``; restore its backup if the target is gone."""
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
def atomic_directory(directory: str | os.PathLike[str], *,
                     replaceable: Collection[str] | Callable[[Path], bool]) -> Iterator[Path]:
    """Write a folder elsewhere, then swap it in for ``directory`` in one step.

    ``directory`` is resolved first (a symlinked folder is replaced where it points, the link kept).
    An existing ``directory`` may hold only files named in ``replaceable`` (or for which the predicate
    ``replaceable(path)`` is true: e.g. files this library wrote itself); anything else is refused
    with :class:`FileExistsError` naming the files, so a mistyped path never deletes unrelated files.
    A folder that is the process's working directory (or holds it) is refused too.
    Swapping uses Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames with a recoverable backup.
    """
    directory = Path(directory).absolute()
    if directory.is_symlink():
        directory = directory.resolve()
    if directory.exists():
        if not directory.is_dir():
            raise FileExistsError(f"{directory} exists and is not a folder")
        owned = replaceable if callable(replaceable) else (lambda p: p.name in replaceable)
        foreign = sorted(p.name for p in directory.iterdir() if not owned(p))
        if foreign:
            raise FileExistsError(f"{directory} holds files that this write would replace or that are not "
                                  f"its own: {foreign}; write into a new folder, or an empty one")
        cwd = Path.cwd().resolve()
        if cwd == directory.resolve() or directory.resolve() in cwd.parents:
            raise FileExistsError(f"{directory} is the current working directory (or holds it); replacing it "
                                  "would pull the folder out from under this process: write to another folder")
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
        fsync_path(directory.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
