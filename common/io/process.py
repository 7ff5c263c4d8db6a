"""Child processes that cannot outlive their parent (a stage, a demo site, a worker), and
this process's name among workers."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from typing import Any

__all__ = ["child_popen_options", "default_worker_id"]


def default_worker_id() -> str:
    """``<host>-<pid>``: distinct for every live process on every machine. The one format
    of a worker id (ledger rows, work-queue leases)."""
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


_PR_SET_PDEATHSIG = 1
# Resolved now: between fork and exec the child must not import, spawn or take locks.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    # The parent blocks SIGINT/SIGTERM around the fork; the child must not inherit that mask.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        # A parent that died before prctl() sends no signal: the child would live on, holding
        # its stage's lock or the demo site's port for the next run. Then go now.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)


def child_popen_options() -> dict[str, Any]:
    """``subprocess.Popen`` options for a stage, demo-site or worker child.

    The child gets its own process group, so a terminal's Ctrl-C reaches only the orchestrator
    (which forwards it once, instead of the child seeing it twice and dying uncleanly). On Linux
    the kernel SIGKILLs the child when the orchestrator dies, even by ``kill -9``, so no orphan
    keeps a stage locked for the next run; that holds even when the orchestrator dies while the
    child is being started. Call it, and ``Popen``, from the thread that lives as long as the
    child should: Linux ties the signal to the thread that forked.
    """
    return {"process_group": 0, "preexec_fn": functools.partial(_die_with_parent, os.getpid())}
