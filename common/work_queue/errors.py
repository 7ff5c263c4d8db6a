"""Errors of the PostgreSQL work queue; all are :class:`common.errors.CheckpointError` (the
tree is drawn in :mod:`common.errors`)."""

from __future__ import annotations

from common.errors import CheckpointError, StoreUnavailableError

__all__ = ["LeaseLostError", "StageNotLoadedError", "WorkQueueError", "WorkQueueUnavailableError"]


class WorkQueueError(CheckpointError):
    """The shared queue cannot be used as asked (unreachable server, bad option, wrong state)."""


class WorkQueueUnavailableError(WorkQueueError, StoreUnavailableError):
    """The queue's PostgreSQL server cannot be reached: infrastructure, not the stage's state."""


class StageNotLoadedError(WorkQueueError):
    """No starter has loaded this stage's items into the database yet."""


class LeaseLostError(WorkQueueError):
    """Items of a batch passed to another worker: this worker's results for them are dropped.

    The other worker does those items again and commits them once; nothing is doubled.
    ``committed`` counts the batch's items this worker still owned and committed.
    """

    def __init__(self, message: str, *, stage: str | None = None, committed: int = 0) -> None:
        super().__init__(message, stage=stage)
        self.committed = committed
