"""A stage's history: when a save also keeps a timestamped snapshot, and writing and pruning them.

A snapshot is kept on every status change (start, pause, completion, failure: the reason is the
change), on ``set_position``, before a reset or restore, and every ``every_seconds`` while a
stage runs, so ``checkpoint-manager history`` can show its throughput over time. Only the
``keep`` newest stay.

Threads: :meth:`History.status_changed`, :meth:`History.take_pending` and
:meth:`History.reason_for` run on the checkpoint's owner thread (they decide, at snapshot time);
:meth:`History.record_and_prune` runs on the saver thread after the record it copies is saved,
and touches nothing but the store.
"""

from __future__ import annotations

from typing import Any

from common.stores.base import CheckpointStore

__all__ = ["History", "prune_history"]


class History:
    """The history policy and writer of one stage in one store."""

    def __init__(
        self, store: CheckpointStore, stage: str, *, keep: int, every_seconds: float, now: float
    ) -> None:
        self._store = store
        self._stage = stage
        #: Snapshots kept per stage.
        self.keep = keep
        #: A running stage is also snapshotted this often.
        self.every_seconds = every_seconds
        self._last = now
        self._pending: str | None = None

    def status_changed(self, reason: str | None) -> None:
        """The status just changed for ``reason`` (None: it did not change): the next save says so."""
        self._pending = reason

    def take_pending(self) -> str | None:
        """The reason of the status change the next save carries, once."""
        reason, self._pending = self._pending, None
        return reason

    def reason_for(self, now: float, reason: str | None) -> str | None:
        """Why the save taken at ``now`` is also a history snapshot, or None when it is not."""
        if reason is None and now - self._last >= self.every_seconds:
            reason = "progress"
        if reason is not None:
            self._last = now
        return reason

    def record(self, record: dict[str, Any], reason: str, now: float) -> str:
        """Keep ``record`` as a snapshot now; its id."""
        return self._store.save_history(self._stage, record, reason, now)

    def record_and_prune(self, record: dict[str, Any], reason: str, now: float) -> None:
        """Saver thread: keep ``record`` (just saved) and drop all but the newest ``keep``."""
        self.record(record, reason, now)
        prune_history(self._store, self._stage, self.keep)


def prune_history(store: CheckpointStore, stage: str, keep: int) -> None:
    """Keep the ``keep`` newest history entries of ``stage``."""
    entries = store.list_history(stage)
    for entry in entries[: max(0, len(entries) - keep)]:
        store.delete_history(stage, entry.snapshot_id)
