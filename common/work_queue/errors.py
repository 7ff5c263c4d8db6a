"""Errors of the PostgreSQL work queue; all are :class:`common.errors.CheckpointError`."""

from __future__ import annotations

from common.errors import CheckpointError

__all__ = ["LeaseLostError", "StageNotLoadedError", "WorkQueueError"]


class WorkQueueError(CheckpointError):
    """The shared queue cannot be used as asked (unreachable server, bad option, wrong state)."""


class StageNotLoadedError(WorkQueueError):
    """No starter has loaded this stage's items into the database yet."""


class LeaseLostError(WorkQueueError):
    """A batch's lease passed to another worker: this worker's results for it are dropped.

    The other worker does the items again and commits them once; nothing is doubled.
    """
