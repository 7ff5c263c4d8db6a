"""What one save writes, and writing it: the snapshot (taken on the owner's thread) and
:func:`persist` (run on the saver thread).

A :class:`Snapshot` is everything a save needs, copied while the owner held the checkpoint's
lock: the record, the journal bytes with the lengths they bring each journal to, the rows a
store commits in the record's transaction. :func:`persist` writes the journals first, then the
record that commits them, then (maybe) a history entry; it changes no engine object and
returns a :class:`SaveResult`, which the owner applies when it next reaps its saves: so each
field has exactly one thread that writes it (see :mod:`common.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import CheckpointError, CheckpointSaveError
from common.history import History, prune_history
from common.journal import Journal
from common.state import MAX_RECENT_ERRORS
from common.status import CheckpointStatus
from common.stores.base import CheckpointStore, KeySet, StagedRows

__all__ = ["SaveResult", "Snapshot", "failure_record", "persist", "prune_history"]


@dataclass(slots=True)
class Snapshot:
    """One save's content, taken on the owner's thread."""

    record: dict[str, Any]
    journal_writes: list[tuple[Journal, bytes, int]]
    history_reason: str | None = None
    now: float = 0.0
    rows: StagedRows = field(default_factory=StagedRows)
    keys: KeySet | None = None


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What a completed save committed; applied by the owner (:meth:`apply`)."""

    record: dict[str, Any]
    offsets: tuple[tuple[Journal, int], ...]
    keys: KeySet | None
    committed_keys: tuple[str, ...]

    def apply(self) -> None:
        """Owner thread: the journals' committed lengths and the store's key set catch up."""
        for journal, offset in self.offsets:
            journal.committed = offset
        if self.keys is not None and self.committed_keys:
            self.keys.committed(list(self.committed_keys))


def persist(
    store: CheckpointStore, stage: str, path: Path, snapshot: Snapshot, history: History
) -> SaveResult:
    """Saver thread: journals first (fsynced), then the record that commits them."""
    for journal, data, _offset in snapshot.journal_writes:
        try:
            journal.write_durable(data)
        except OSError as exc:
            raise CheckpointSaveError(
                f"could not write {journal.path}: {exc.strerror or exc}; the checkpoint "
                f"{path} still holds the previous state",
                stage=stage,
                path=journal.path,
            ) from exc
    if snapshot.rows:
        store.save(stage, snapshot.record, snapshot.rows)
    else:  # stores written before ``rows`` existed keep working
        store.save(stage, snapshot.record)
    if snapshot.history_reason:
        history.record_and_prune(snapshot.record, snapshot.history_reason, snapshot.now)
    return SaveResult(
        snapshot.record,
        tuple((journal, offset) for journal, _data, offset in snapshot.journal_writes),
        snapshot.keys,
        tuple(snapshot.rows.keys or ()),
    )


def failure_record(
    record: dict[str, Any] | None, error: CheckpointError, stamp: str
) -> dict[str, Any] | None:
    """The last saved ``record`` marked failed with ``error``; None if it needs no change
    (nothing saved by this run, or a finished record)."""
    if record is None or record.get("status") not in ("running", "recovering"):
        return None
    message = f"{type(error).__name__}: {error}"
    return {
        **record,
        "status": CheckpointStatus.FAILED.value,
        "error_message": message,
        "error_count": int(record.get("error_count") or 0) + 1,
        "last_error_time": stamp,
        "recent_errors": [
            *list(record.get("recent_errors") or [])[1 - MAX_RECENT_ERRORS :],
            {"time": stamp, "message": message},
        ],
        "updated_at": stamp,
    }
