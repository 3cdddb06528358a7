"""A run's output folder: what may be in it, and the exclusive lock of the one process that writes it.

Only one trainer writes a run folder at a time. The writing process (rank 0 under ``torchrun``) holds an
``flock`` on ``<run>/.lock`` for as long as it runs and records itself there (pid, host, start time,
command). A second trainer on the same folder stops with an error that names the holder. The kernel
releases the lock when its holder dies, however it dies, so a lock left by a killed process is
detected (its record is there, the lock is free) and taken over, with a log line naming the old holder:
this is how a run restarted by ``torchrun --max-restarts`` continues in its own folder. On a shared
file system the lock holds where ``flock`` is coherent across machines (NFSv4, Lustre, GPFS).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ..errors import RunExistsError, RunLockedError
from ..util.atomic import temporary_target

__all__ = ["RUN_FILES", "LOCK_NAME", "RunLock", "check_output_folder", "check_run_files"]

LOCK_NAME = ".lock"
# what a run folder holds: a folder with anything else is not a run and is never written into
RUN_FILES = frozenset({"config.json", "metrics.jsonl", "metrics.csv", "curves.png", "checkpoints", "tensorboard",
                       "memory.json", LOCK_NAME})


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


class RunLock:
    """The exclusive lock on a run folder (see the module docstring). Use as a context manager."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None   # the record of the dead holder whose lock was taken

    def _read(self, fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        try:
            value = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return {"pid": "?", "note": "unreadable lock record"}
        return value if isinstance(value, dict) else {}

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLockedError` naming the process that holds it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise RunLockedError(f"{self.run_dir} is being written by another trainer: {_describe(holder)}. Wait "
                                 "for it to finish, stop it, or choose another --output") from None
        previous = self._read(fd)
        if previous.get("pid") is not None and not previous.get("released"):
            self.took_over = previous
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        return self

    def stale_note(self) -> str | None:
        """A line for the log when the lock of a process that died was taken over."""
        if self.took_over is None:
            return None
        return f"took over the lock of a trainer that stopped without releasing it ({_describe(self.took_over)})"

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            record = self._read(self._fd)
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, json.dumps({**record, "released": True}).encode("utf-8"))
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_output_folder(run_dir: Path, resuming: bool) -> None:
    """A new run writes only into a missing or empty folder, or one that holds an unfinished run's own files."""
    check_run_files(run_dir)
    if resuming or not run_dir.is_dir():
        return
    ckpts = run_dir / "checkpoints"
    if (ckpts / "last.pt").exists() or (ckpts / "latest.json").exists():
        raise RunExistsError(f"{run_dir} already holds a run (checkpoints/); pass --resume {run_dir} (or "
                             "--resume auto) to continue it, or choose another --output")


def check_run_files(run_dir: Path) -> None:
    """``run_dir`` is missing, or a folder holding nothing but a run's files (checked before anything is written)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunExistsError(f"--output {run_dir} is a file, not a folder; choose a folder for the run")
    if not run_dir.is_dir():
        return
    # a process killed while it rewrote one of the run's files leaves that write's temporary (cleared
    # once the lock is taken): it is the run's own, not a foreign file
    foreign = sorted(p.name for p in run_dir.iterdir()
                     if p.name not in RUN_FILES and not (p.is_file() and temporary_target(p.name) in RUN_FILES))
    record = run_dir / "config.json"
    if not foreign and record.is_file():
        try:
            ok = {"config", "recipe"} <= set(json.loads(record.read_text()))
        except (ValueError, TypeError, UnicodeDecodeError):
            ok = False
        if not ok:
            foreign = ["config.json (not a tglc-train run record)"]
    if foreign:
        raise RunExistsError(f"--output {run_dir} holds files that are not a tglc-train run: {foreign[:10]}; "
                             "a run never writes into a folder of other files: choose a new or empty folder")
