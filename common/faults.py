"""Test-only crash points.

Setting ``CHECKPOINT_CRASH_AT`` to a point's name (``after_temp_write``, ``after_temp_fsync``,
``after_backup``, ``after_replace``, ``after_journal_write``, ``after_journal_fsync``) makes the
process SIGKILL itself when it reaches that step of a save, so tests can prove each step is safe.
The SQLite store has its own two (``SQLITE_CRASH_POINTS``): inside the save's transaction, rows
written but not committed, and right after the commit.
``CHECKPOINT_CRASH_SKIP=N`` lets the first N arrivals pass. Read once at import: unset, it costs
one comparison.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINTS", "SQLITE_CRASH_POINTS", "crash_point"]

CRASH_POINTS = (
    "after_journal_write",
    "after_journal_fsync",
    "after_temp_write",
    "after_temp_fsync",
    "after_backup",
    "after_replace",
)

SQLITE_CRASH_POINTS = ("sqlite_before_commit", "sqlite_after_commit")

_TARGET = os.environ.get("CHECKPOINT_CRASH_AT") or None
_skip = int(os.environ.get("CHECKPOINT_CRASH_SKIP", "0") or 0)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if the test switch names ``name``."""
    global _skip
    if _TARGET is None or name != _TARGET:
        return
    if _skip > 0:
        _skip -= 1
        return
    os.kill(os.getpid(), signal.SIGKILL)
