"""Test-only fault injection: crash points and disk errors at named steps.

Two switches, read once at import (unset, each costs one comparison per step):

``CHECKPOINT_CRASH_AT=<point>``
    The process SIGKILLs itself when it reaches that step, so tests can prove each step is
    safe. ``CHECKPOINT_CRASH_SKIP=N`` lets the first N arrivals pass.

``CHECKPOINT_FAIL_AT=<point>[,<point>...]``
    Reaching one of those steps raises ``OSError(CHECKPOINT_FAIL_ERRNO)`` instead (an errno
    name such as ``ENOSPC`` or ``EROFS``, or a number; ``ENOSPC`` by default), as a full or
    read-only disk would. ``CHECKPOINT_FAIL_SKIP=N`` lets the first N arrivals pass;
    ``CHECKPOINT_FAIL_TIMES=N`` stops failing after N failures (default: a disk that stays
    full).

The points, in the order a save reaches them, are listed in :data:`POINTS`. The SQLite store
has its own two (:data:`SQLITE_CRASH_POINTS`): inside the save's transaction (rows written, not
committed) and right after the commit.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

__all__ = [
    "CRASH_POINTS",
    "POINTS",
    "RECOVERY_POINTS",
    "SAVE_POINTS",
    "SQLITE_CRASH_POINTS",
    "SWITCH_POINTS",
    "crash_point",
    "fault_point",
]

#: Reached by every save that carries output records (the original six).
CRASH_POINTS = (
    "after_journal_write",
    "after_journal_fsync",
    "after_temp_write",
    "after_temp_fsync",
    "after_backup",
    "after_replace",
)

#: Every step of a save, in order: output journals, then the atomic record replacement.
SAVE_POINTS = (
    "journal_open",  # before an append-only journal (output, failed sidecar, keys) is opened
    "after_journal_write",  # records appended, not yet fsynced or committed
    "after_journal_fsync",  # records durable, not yet committed by the record
    "temp_open",  # before the temporary record file is created
    "after_temp_write",
    "after_temp_fsync",
    "after_backup_link",  # the current file hard-linked as the backup (or under a temporary
    # name, when an old backup that could not be recycled is replaced)
    "after_backup",  # the backup in place, the new record not yet
    "after_replace",  # the new record in place, its directory not yet fsynced
    "after_dir_fsync",  # the save is complete and durable
)

#: Steps of recovery and of starting over, reached only in those situations.
RECOVERY_POINTS = (
    "lock_open",  # before the stage's lock file is opened
    "after_journal_truncate",  # uncommitted records cut from a journal (resume or fresh start)
    "after_damaged_aside",  # a damaged main file renamed aside, the restored record not yet saved
    "after_reset_record",  # a fresh start's empty record saved, journals not yet emptied
)

POINTS = SAVE_POINTS + RECOVERY_POINTS

#: A fresh switch to the other store (:class:`common.stores.factory.StoreSwitch`): after each
#: file of the old store's checkpoints is removed (a record, its backup, a journal, the database
#: or its -wal/-shm; a reset's removal reaches it too), and once they are all gone, before the
#: new store's first write.
SWITCH_POINTS = ("after_unlink", "after_store_switch")

#: The SQLite store's save (:mod:`common.stores.sqlite`): one transaction instead of files.
SQLITE_CRASH_POINTS = ("sqlite_before_commit", "sqlite_after_commit")


def _parse_errno(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    value = getattr(errno, text.upper(), None)
    if not isinstance(value, int):
        raise ValueError(f"CHECKPOINT_FAIL_ERRNO={text!r} is not an errno name or number")
    return value


_TARGET = os.environ.get("CHECKPOINT_CRASH_AT") or None
_skip = int(os.environ.get("CHECKPOINT_CRASH_SKIP", "0") or 0)
_FAIL = frozenset(p.strip() for p in os.environ.get("CHECKPOINT_FAIL_AT", "").split(",") if p)
_FAIL_ERRNO = _parse_errno(os.environ.get("CHECKPOINT_FAIL_ERRNO") or "ENOSPC")
_fail_skip = int(os.environ.get("CHECKPOINT_FAIL_SKIP", "0") or 0)
_fail_times = int(os.environ.get("CHECKPOINT_FAIL_TIMES", "0") or 0) or -1
_ACTIVE = _TARGET is not None or bool(_FAIL)


def fault_point(name: str, path: Path | str | None = None) -> None:
    """Crash (SIGKILL) or raise the configured ``OSError`` at step ``name``, if switched on.

    ``path`` is the file the step works on; it becomes the error's ``filename``.
    """
    global _skip, _fail_skip, _fail_times
    if not _ACTIVE:
        return
    if name == _TARGET:
        if _skip > 0:
            _skip -= 1
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    if name in _FAIL and _fail_times != 0:
        if _fail_skip > 0:
            _fail_skip -= 1
            return
        _fail_times -= 1
        raise OSError(
            _FAIL_ERRNO,
            os.strerror(_FAIL_ERRNO),
            None if path is None else str(path),
        )


#: The original name: every point can crash, and every point can fail.
crash_point = fault_point
