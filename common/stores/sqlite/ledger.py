"""Seed 004's per-item ledger in the SQLite database (table ``ledger``, :mod:`common.ledger`).

:class:`SqliteLedger` answers the ledger's queries (:class:`common.ledger.LedgerBackend`) and
registers items; the rows the engine buffers are written by :func:`write_ledger_rows` inside the
store's save transaction, with the record that counts them.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable
from typing import Any

from common.ledger import FINISHED_STATUSES, LEDGER_STATUSES, LedgerEntry, LedgerStatistics
from common.stores.base import validate_stage_name
from common.stores.sqlite.database import SqliteDatabase

__all__ = ["SqliteLedger", "write_ledger_rows"]

_KEY_CHUNK = 50_000

_UPSERT_LEDGER = """
INSERT INTO ledger (sid, key, worker_id, status, attempts, error, first_at, last_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sid, key) DO UPDATE SET
    worker_id = excluded.worker_id,
    status = excluded.status,
    attempts = ledger.attempts + excluded.attempts,
    error = excluded.error,
    first_at = COALESCE(ledger.first_at, excluded.first_at),
    last_at = excluded.last_at
"""


def write_ledger_rows(conn: sqlite3.Connection, sid: int, entries: Iterable[LedgerEntry]) -> None:
    """Insert or update the rows of ``entries`` (attempts add up; the first time stays)."""
    conn.executemany(
        _UPSERT_LEDGER,
        ((sid, e.key, e.worker_id, e.status, e.attempts, e.error, e.at, e.at) for e in entries),
    )


class SqliteLedger:
    """The ledgers of every stage in one :class:`SqliteDatabase` (a :class:`LedgerBackend`)."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def ledger_register(self, stage: str, keys: Iterable[str]) -> int:
        validate_stage_name(stage)
        added = 0
        iterator = iter(keys)
        while batch := [str(key) for key in itertools.islice(iterator, _KEY_CHUNK)]:
            with self._db._transaction(f"register ledger items of {stage!r}") as conn:
                sid = self._db._sid(conn, stage, create=True)
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO ledger (sid, key, status) VALUES (?, ?, 'pending')",
                    ((sid, key) for key in batch),
                )
                added += conn.total_changes - before
            if sid is not None:
                self._db._sids[stage] = sid
        return added

    @staticmethod
    def _remaining_statuses(include_failed: bool) -> tuple[str, ...]:
        return ("pending", "failed") if include_failed else ("pending",)

    def ledger_remaining(self, stage: str, *, limit: int | None, include_failed: bool) -> list[str]:
        statuses = self._remaining_statuses(include_failed)
        marks = ",".join("?" * len(statuses))
        rows = self._db._read(
            f"SELECT l.key FROM ledger l JOIN stages s ON s.id = l.sid "  # noqa: S608 - marks only
            f"WHERE s.name = ? AND l.status IN ({marks}) ORDER BY l.id LIMIT ?",
            (stage, *statuses, -1 if limit is None else limit),
        )
        return [row[0] for row in rows]

    def ledger_count_remaining(self, stage: str, *, include_failed: bool) -> int:
        statuses = self._remaining_statuses(include_failed)
        marks = ",".join("?" * len(statuses))
        rows = self._db._read(
            f"SELECT count(*) FROM ledger l JOIN stages s ON s.id = l.sid "  # noqa: S608
            f"WHERE s.name = ? AND l.status IN ({marks})",
            (stage, *statuses),
        )
        return int(rows[0][0]) if rows else 0

    def ledger_count(self, stage: str) -> int:
        rows = self._db._read(
            "SELECT count(*) FROM ledger l JOIN stages s ON s.id = l.sid WHERE s.name = ?",
            (stage,),
        )
        return int(rows[0][0]) if rows else 0

    def ledger_statistics(self, stage: str) -> LedgerStatistics:
        where = "FROM ledger l JOIN stages s ON s.id = l.sid WHERE s.name = ?"
        finished = f"l.status IN ({','.join(repr(s) for s in FINISHED_STATUSES)})"
        by_status = dict.fromkeys(LEDGER_STATUSES, 0)
        for status, count in self._db._read(
            f"SELECT l.status, count(*) {where} GROUP BY l.status", (stage,)
        ):
            by_status[status] = int(count)
        by_worker: dict[str, dict[str, int]] = {}
        for worker, status, count in self._db._read(
            f"SELECT l.worker_id, l.status, count(*) {where} AND {finished} "
            "GROUP BY l.worker_id, l.status ORDER BY l.worker_id, l.status",
            (stage,),
        ):
            by_worker.setdefault(worker or "", {})[status] = int(count)
        attempts = {
            int(n): int(count)
            for n, count in self._db._read(
                f"SELECT l.attempts, count(*) {where} AND {finished} "
                "GROUP BY l.attempts ORDER BY l.attempts",
                (stage,),
            )
        }
        errors = {
            str(error): int(count)
            for error, count in self._db._read(
                f"SELECT l.error, count(*) AS n {where} AND l.status = 'failed' "
                "GROUP BY l.error ORDER BY n DESC, l.error",
                (stage,),
            )
        }
        span = self._db._read(f"SELECT min(l.first_at), max(l.last_at) {where}", (stage,))
        first_at, last_at = span[0] if span else (None, None)
        return LedgerStatistics(
            total=sum(by_status.values()),
            by_status=by_status,
            by_worker=by_worker,
            attempts=attempts,
            errors=errors,
            remaining=by_status["pending"],
            first_at=first_at,
            last_at=last_at,
        )

    def ledger_entry(self, stage: str, key: str) -> dict[str, Any] | None:
        rows = self._db._read(
            "SELECT l.key, l.worker_id, l.status, l.attempts, l.error, l.first_at, l.last_at "
            "FROM ledger l JOIN stages s ON s.id = l.sid WHERE s.name = ? AND l.key = ?",
            (stage, key),
        )
        if not rows:
            return None
        names = ("key", "worker_id", "status", "attempts", "error", "first_at", "last_at")
        return dict(zip(names, rows[0], strict=True))

    def ledger_clear(self, stage: str) -> None:
        if not self._db.path.exists():
            return
        with self._db._transaction(f"clear the ledger of {stage!r}") as conn:
            sid = self._db._sid(conn, stage, create=False)
            if sid is not None:
                conn.execute("DELETE FROM ledger WHERE sid = ?", (sid,))
