"""Seed 004's per-item ledger: which worker did which item, how it went, how often it was tried.

One row per item key (a URL, an id) of a stage: the worker id, the status (``pending``,
``done``, ``failed``, ``skipped``), the attempts, the last error, and the first and last time it
was recorded. Rows are buffered on the thread doing the work and committed by the checkpoint's
next save **in the same transaction as the record** (so the ledger never claims an item the
checkpoint does not count, and vice versa). Queries answer what seed 004's
``get_remaining_files`` and ``get_statistics`` did: the work still to do, and per status, per
worker, attempts and error counts.

A store keeps the rows (:meth:`common.stores.base.CheckpointStore.ledger_backend`); the SQLite
store does, the JSON store does not. ::

    store = open_store("sqlite", "data/checkpoints")
    ledger = Ledger(store, "stage3_async_enrichment")
    ledger.register(urls)                 # every item, once: they start "pending"
    ledger.remaining(limit=100)           # first 100 keys not finished yet, in registration order
    ledger.statistics().by_worker         # {"worker-a": {"done": 812, "failed": 3}, ...}

The engine attaches a ledger by itself when its store has one: every accepted ``update()`` of an
item with a key (``key=``, else ``last_item``, else the index) records a row for its worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from common.errors import LedgerUnavailableError
from common.io.process import default_worker_id

if TYPE_CHECKING:
    from collections.abc import Iterable

    from common.stores.base import CheckpointStore

__all__ = [
    "FINISHED_STATUSES",
    "LEDGER_STATUSES",
    "Ledger",
    "LedgerBackend",
    "LedgerEntry",
    "LedgerStatistics",
    "LedgerUnavailableError",
    "default_worker_id",
]

#: Every status a ledger row can have; ``pending`` rows were registered and not finished yet.
LEDGER_STATUSES = ("pending", "done", "failed", "skipped")
#: Statuses that mean the item was processed (failed items count as processed, as in the
#: checkpoint's counts; ``remaining(include_failed=True)`` lists them for a retry).
FINISHED_STATUSES = ("done", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One finished attempt at an item, as recorded (and upserted into its row)."""

    key: str
    status: str
    worker_id: str
    attempts: int
    error: str | None
    at: float


@dataclass(frozen=True, slots=True)
class LedgerStatistics:
    """Seed 004's ``get_statistics``, over the committed rows of one stage.

    ``by_worker`` maps a worker id to its finished items per status; ``attempts`` maps an
    attempts count to how many finished items needed that many; ``errors`` maps an error
    message to how many failed items ended with it (most frequent first).
    """

    total: int
    by_status: dict[str, int]
    by_worker: dict[str, dict[str, int]]
    attempts: dict[int, int]
    errors: dict[str, int]
    remaining: int
    first_at: float | None
    last_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (attempts counts become string keys)."""
        return {
            "total": self.total,
            "remaining": self.remaining,
            "by_status": dict(self.by_status),
            "by_worker": {w: dict(s) for w, s in self.by_worker.items()},
            "attempts": {str(k): v for k, v in self.attempts.items()},
            "errors": dict(self.errors),
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


class LedgerBackend(Protocol):
    """What a store implements to keep ledgers (the SQLite store does)."""

    def ledger_register(self, stage: str, keys: Iterable[str]) -> int: ...

    def ledger_remaining(
        self, stage: str, *, limit: int | None, include_failed: bool
    ) -> list[str]: ...

    def ledger_count_remaining(self, stage: str, *, include_failed: bool) -> int: ...

    def ledger_count(self, stage: str) -> int: ...

    def ledger_statistics(self, stage: str) -> LedgerStatistics: ...

    def ledger_entry(self, stage: str, key: str) -> dict[str, Any] | None: ...

    def ledger_clear(self, stage: str) -> None: ...


@dataclass
class Ledger:
    """The ledger of one stage in ``store``, written as worker ``worker_id``.

    :meth:`record` only buffers (it is called on the hot path); the owning checkpoint's save
    commits the buffer. The queries read committed rows and block on the database: from async
    code run them in a worker thread.
    """

    store: CheckpointStore
    stage: str
    worker_id: str = field(default_factory=default_worker_id)
    _pending: list[LedgerEntry] = field(default_factory=list, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.worker_id, str) or not self.worker_id.strip():
            raise ValueError(f"worker_id must be a non-empty string, got {self.worker_id!r}")
        if len(self.worker_id) > 200:
            raise ValueError(f"worker_id is too long ({len(self.worker_id)} characters, max 200)")

    @classmethod
    def available(cls, store: CheckpointStore) -> bool:
        """True when ``store`` keeps ledgers."""
        return store.ledger_backend() is not None

    @property
    def _backend(self) -> LedgerBackend:
        backend = self.store.ledger_backend()
        if backend is None:
            raise LedgerUnavailableError(
                f"stage {self.stage!r}: the checkpoint store at {self.store.location} keeps no "
                f"per-item ledger; use the sqlite store (--store sqlite)",
                stage=self.stage,
            )
        return backend

    # Writing ---------------------------------------------------------------------------------

    def record(
        self,
        key: str,
        status: str,
        *,
        at: float,
        attempts: int = 1,
        error: str | None = None,
    ) -> None:
        """Buffer one finished attempt at ``key``; the next checkpoint save commits it."""
        if status not in FINISHED_STATUSES:
            raise ValueError(
                f"ledger status must be one of {', '.join(FINISHED_STATUSES)}, got {status!r}"
            )
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ValueError(f"attempts must be an integer >= 0, got {attempts!r}")
        entry = LedgerEntry(str(key), status, self.worker_id, attempts, error, at)
        with self._guard:
            self._pending.append(entry)

    def record_update(
        self,
        key: str | None,
        last_item: str | None,
        index: int | None,
        part: str | None,
        successful: int,
        failed: int,
        skipped: int,
        failed_record: Any,
        attempts: int,
        now: float,
    ) -> None:
        """Buffer the row of one accepted ``EnhancedCheckpoint.update()`` (its arguments).

        The item is ``key``, else ``last_item``, else the index (``part:index`` in a part); an
        update naming none records nothing. Its status comes from the counts, its error from
        ``failed_record["error"]``.
        """
        item = key if key is not None else last_item
        if item is None and index is not None:
            item = str(index) if part is None else f"{part}:{index}"
        if item is None:
            return
        status = "failed" if failed else "skipped" if skipped and not successful else "done"
        error = failed_record.get("error") if isinstance(failed_record, dict) else None
        self.record(
            item,
            status,
            at=now,
            attempts=attempts,
            error=None if error is None else str(error),
        )

    def take_pending(self) -> list[LedgerEntry]:
        """The buffered entries, handed to a save (owner thread, at the snapshot)."""
        with self._guard:
            pending, self._pending = self._pending, []
        return pending

    def discard_pending(self) -> None:
        """Drop buffered entries (the stage was reset)."""
        with self._guard:
            self._pending.clear()

    def register(self, keys: Iterable[str]) -> int:
        """Add every item of the input as ``pending`` (keys already present are left alone).

        Its own transaction, independent of the checkpoint: registering twice is harmless.
        Returns how many rows were new. Blocking.
        """
        return self._backend.ledger_register(self.stage, keys)

    def clear(self) -> None:
        """Delete the stage's rows now (a reset); pending entries are dropped too."""
        self.discard_pending()
        self._backend.ledger_clear(self.stage)

    # Queries ---------------------------------------------------------------------------------

    def remaining(self, limit: int | None = None, *, include_failed: bool = False) -> list[str]:
        """Keys still to do, in registration order: ``pending`` rows (and ``failed`` ones with
        ``include_failed``). Seed 004's ``get_remaining_files``."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return self._backend.ledger_remaining(
            self.stage, limit=limit, include_failed=include_failed
        )

    def count(self) -> int:
        """How many items the ledger holds (registered or recorded)."""
        return self._backend.ledger_count(self.stage)

    def count_remaining(self, *, include_failed: bool = False) -> int:
        """How many keys :meth:`remaining` would list without a limit."""
        return self._backend.ledger_count_remaining(self.stage, include_failed=include_failed)

    def statistics(self) -> LedgerStatistics:
        """Per status, per worker, attempts distribution and error counts."""
        return self._backend.ledger_statistics(self.stage)

    def entry(self, key: str) -> dict[str, Any] | None:
        """One item's row (key, worker_id, status, attempts, error, first_at, last_at)."""
        return self._backend.ledger_entry(self.stage, key)
