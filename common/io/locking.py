"""One writer per stage: an advisory ``fcntl.flock`` on ``<stage>.lock``.

The kernel drops the lock when its owner dies, even by SIGKILL, so a crashed run never leaves a
stale lock behind, and "is anyone holding it?" tells a crashed stage from a live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from common.errors import CheckpointLockedError, CheckpointSaveError
from common.io.atomic import FILE_MODE, ensure_private_dir
from common.io.faults import fault_point

__all__ = ["StageLock", "flock_holder_pid"]

_ACQUIRE_ATTEMPTS = 5


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
        try:
            # A reader probing the lock (is_held_elsewhere) holds it shared for microseconds;
            # a few quick retries keep such a probe from refusing a real writer.
            for attempt in range(_ACQUIRE_ATTEMPTS):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == _ACQUIRE_ATTEMPTS - 1:
                        raise
                    # Async callers and a crawl's open run this in a worker thread, not the loop.
                    time.sleep(0.01)
        except BlockingIOError:
            os.close(fd)
            pid = self.holder_pid()
            who = f"process {pid}" if pid else "another process"
            raise CheckpointLockedError(
                f"stage {self.stage!r} is locked by {who} ({self.path}); another run of this "
                f"stage is in progress. Wait for it to finish or stop it first.",
                stage=self.stage,
                path=self.path,
                holder_pid=pid,
            ) from None
        except BaseException:
            os.close(fd)
            raise
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
