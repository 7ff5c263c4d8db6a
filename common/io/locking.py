"""One writer per stage: an advisory ``fcntl.flock`` on ``<stage>.lock``.

The kernel drops the lock when its owner dies, even by SIGKILL, so a crashed run never leaves a
stale lock behind, and "is anyone holding it?" tells a crashed stage from a live one.

:func:`flock_or_close` is the one "lock it or say who holds it" step: the stage lock and each
output journal (:mod:`common.journal`, a lock on the file itself) take their locks through it
and turn the :class:`FlockHeld` it returns into their own messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointLockedError, CheckpointSaveError
from common.io.atomic import FILE_MODE, ensure_private_dir
from common.io.faults import fault_point

__all__ = ["FlockHeld", "StageLock", "flock_holder_pid", "flock_or_close"]

_ACQUIRE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class FlockHeld:
    """Another open file holds the lock :func:`flock_or_close` asked for; its caller says so
    in its own words."""

    path: Path
    #: The holder's pid, when it can be told.
    holder_pid: int | None


def flock_or_close(
    fd: int,
    path: Path,
    *,
    attempts: int = 1,
    holder_pid: Callable[[], int | None] | None = None,
) -> int | FlockHeld:
    """Take an exclusive ``flock`` on ``fd`` (open on ``path``) without waiting; ``fd``.

    When another open file holds it, ``fd`` is closed and a :class:`FlockHeld` returned with
    the holder's pid (``holder_pid()``, by default :func:`flock_holder_pid`); any other error
    closes ``fd`` too and propagates. ``attempts`` > 1 retries 10 ms apart first: a reader
    probing a stage lock (:meth:`StageLock.is_held_elsewhere`) holds it shared for
    microseconds, and must not refuse a real writer.
    """
    try:
        for _retry in range(attempts - 1):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                # Async callers and a crawl's open run this in a worker thread, not the loop.
                time.sleep(0.01)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return FlockHeld(path, holder_pid() if holder_pid is not None else flock_holder_pid(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


class StageLock:
    """An exclusive, non-blocking, process-wide lock on one stage."""

    def __init__(self, path: Path, stage: str) -> None:
        self.path = path
        self.stage = stage
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`CheckpointLockedError` naming the holder."""
        if self._fd is not None:
            return
        try:
            ensure_private_dir(self.path.parent)
            fault_point("lock_open", self.path)
            # Never through a symbolic link: acquiring truncates the file to write our pid.
            fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
            )
        except OSError as exc:
            raise CheckpointSaveError(
                f"cannot lock stage {self.stage!r}: could not create {self.path}: "
                f"{exc.strerror or exc}; nothing was changed",
                stage=self.stage,
                path=self.path,
            ) from exc
        held = flock_or_close(fd, self.path, attempts=_ACQUIRE_ATTEMPTS, holder_pid=self.holder_pid)
        if isinstance(held, FlockHeld):
            pid = held.holder_pid
            who = f"process {pid}" if pid else "another process"
            raise CheckpointLockedError(
                f"stage {self.stage!r} is locked by {who} ({self.path}); another run of this "
                f"stage is in progress. Wait for it to finish or stop it first.",
                stage=self.stage,
                path=self.path,
                holder_pid=pid,
            )
        with contextlib.suppress(OSError):  # the pid only names the holder; a full disk is fine
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def is_held_elsewhere(self) -> bool:
        """True when some other open lock (another process, or another object) holds it."""
        if self._fd is not None:
            return False
        if not self.path.exists():
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def holder_pid(self) -> int | None:
        """The pid written by the current holder, if readable."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None


def flock_holder_pid(path: Path) -> int | None:
    """The pid holding a ``flock`` on ``path``, from Linux's ``/proc/locks``; None when it
    cannot be told (another system, the file gone, the holder in another pid namespace)."""
    try:
        info = os.stat(path)
        with open("/proc/locks", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return None
    # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": device as hex major:minor, inode.
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            pid = fields[4]
            if pid.isdigit() and int(pid) > 0:
                return int(pid)
    return None
