"""The SQLite store: every stage of a checkpoint directory in one database (stdlib ``sqlite3``).

``<checkpoint_dir>/checkpoints.sqlite3`` (WAL, ``synchronous=FULL``, created 0600) holds each
stage's record and the one before it (the backup), its timestamped history, its done keys and
its per-item ledger (:mod:`common.ledger`). A save is one transaction: the record, the keys it
counts and the ledger rows of the items it counts commit together or not at all, so a SIGKILL
or power cut at any instant leaves the previous or the new state, never a mix.

Done keys live in a table, not in memory: reopening a stage with millions of keys done reads
nothing but the record, and ``key in keys`` is an indexed lookup. Append-only journals (stage
outputs, the Scrapy request journal) stay files beside the database, as with the JSON store,
and the writer lock is the same per-stage ``fcntl`` lock file (a SIGKILLed writer leaves none).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from common.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointSaveError,
    CheckpointSchemaError,
)
from common.io.atomic import FILE_MODE, ensure_private_dir
from common.io.faults import fault_point
from common.io.locking import StageLock
from common.journal import remove_stage_journals, stage_journal_path
from common.ledger import FINISHED_STATUSES, LEDGER_STATUSES, LedgerStatistics
from common.stores.base import (
    CheckpointStore,
    HistoryEntry,
    KeySet,
    LoadedRecord,
    StagedRows,
    load_first_readable,
    snapshot_id_for,
    validate_stage_name,
)

__all__ = ["DATABASE_NAME", "SqliteKeySet", "SqliteStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The database file inside the checkpoint directory (its presence marks a SQLite directory).
DATABASE_NAME = "checkpoints.sqlite3"
#: ``PRAGMA user_version`` of the schema below.
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 30_000
_KEY_CHUNK = 50_000
_SETUP_LOCK = threading.Lock()
_KEY_LOOKUP = "SELECT 1 FROM done_keys WHERE sid = ? AND key = ?"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stages (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS records (
    stage TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    previous TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS set_aside (
    stage TEXT NOT NULL,
    at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    stage TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    created REAL NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (stage, snapshot_id)
);
CREATE TABLE IF NOT EXISTS done_keys (
    sid INTEGER NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sid, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS done_keys_order ON done_keys (sid, n);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY,
    sid INTEGER NOT NULL,
    key TEXT NOT NULL,
    worker_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    first_at REAL,
    last_at REAL,
    UNIQUE (sid, key)
);
CREATE INDEX IF NOT EXISTS ledger_status ON ledger (sid, status);
"""

_UPSERT_RECORD = """
INSERT INTO records (stage, body, previous, updated) VALUES (?, ?, NULL, ?)
ON CONFLICT (stage) DO UPDATE SET
    previous = CASE WHEN ? THEN records.previous ELSE records.body END,
    body = excluded.body,
    updated = excluded.updated
"""

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


class SqliteStore(CheckpointStore):
    """Checkpoint records, history, done keys and ledgers in ``<directory>/checkpoints.sqlite3``.

    Thread-safe: each thread gets its own connection (the engine's saver thread writes while
    the owner thread reads keys). Reading methods never create the database.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DATABASE_NAME
        self.location = str(self.path)
        self.data_dir = Path(os.path.abspath(self.directory)).parent
        self._local = threading.local()
        self._guard = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._schema_ready = False
        self._generation = 0  # bumped by close(): cached connections are stale
        self._sids: dict[str, int] = {}
        # Stages whose record was found damaged: the next save sets it aside instead of making
        # it the backup, so the good backup is never replaced by garbage.
        self._damaged: set[str] = set()

    # Connections -----------------------------------------------------------------------------

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """This thread's connection; None when the database does not exist and ``create`` is
        False (reading a directory never creates anything)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not self.path.exists():
            if not create:
                return None
            ensure_private_dir(self.directory)
            # sqlite gives the -wal and -shm files the database file's permissions.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        # Switching a new database to WAL can fail at once with SQLITE_BUSY (no busy handler,
        # to avoid a deadlock) when another connection sets it up at the same moment.
        with _SETUP_LOCK:
            deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
            while True:
                try:
                    conn = self._open()
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise self._error(exc) from None
                    time.sleep(0.01)
                except sqlite3.Error as exc:
                    raise self._error(exc) from None
        self._local.conn = conn
        with self._guard:
            self._connections.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA cache_size = -16384")  # KiB: hot index pages for lookups
            conn.execute("PRAGMA mmap_size = 1073741824")  # reads without a copy per page
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _writer(self) -> sqlite3.Connection:
        conn = self._connection(create=True)
        assert conn is not None
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        if self._schema_ready:
            return
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CheckpointSchemaError(
                f"checkpoint database {self.path} was written by a newer version (schema "
                f"{version}; this one reads up to {SCHEMA_VERSION}): upgrade, or move it away",
                path=self.path,
            )
        if version < SCHEMA_VERSION:
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                )
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        self._schema_ready = True

    def _error(self, exc: sqlite3.Error) -> CheckpointError:
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return CheckpointError(
                f"checkpoint database {self.path} is busy ({exc}): another process holds it "
                f"for longer than {_BUSY_TIMEOUT_MS // 1000} s",
                path=self.path,
            )
        return self._corrupt(exc)

    def _corrupt(self, exc: sqlite3.Error) -> CheckpointCorruptError:
        return CheckpointCorruptError(
            f"checkpoint database {self.path} cannot be read ({exc}); nothing was changed. "
            f"Move it away or restore it, then run again",
            path=self.path,
        )

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; a database error becomes a :class:`CheckpointSaveError`
        saying ``what`` failed and that nothing changed."""
        conn = self._writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise CheckpointSaveError(
                f"could not {what} in {self.path}: {exc}; nothing was changed", path=self.path
            ) from exc

    def _sid(self, conn: sqlite3.Connection, stage: str, *, create: bool) -> int | None:
        sid = self._sids.get(stage)
        if sid is not None:
            return sid
        row = conn.execute("SELECT id FROM stages WHERE name = ?", (stage,)).fetchone()
        if row is None:
            if not create:
                return None
            sid = conn.execute("INSERT INTO stages (name) VALUES (?)", (stage,)).lastrowid
            assert sid is not None
            return sid  # cached only once committed (the caller's transaction may roll back)
        self._sids[stage] = int(row[0])
        return int(row[0])

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connection(create=False)
        if conn is None:
            return []
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        """Close every connection (any thread's); the next use reconnects."""
        with self._guard:
            connections, self._connections = self._connections, []
        self._generation += 1
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # Locations -------------------------------------------------------------------------------

    def describe(self, stage: str) -> str:
        return f"{self.path}#{validate_stage_name(stage)}"

    def journal_path(self, stage: str, name: str) -> Path:
        return stage_journal_path(self.directory, validate_stage_name(stage), name)

    def lock(self, stage: str) -> StageLock:
        return StageLock(self.directory / f"{validate_stage_name(stage)}.lock", stage)

    # Records ---------------------------------------------------------------------------------

    def load(self, stage: str, parse: Callable[[Any, Path], T]) -> LoadedRecord[T] | None:
        validate_stage_name(stage)
        rows = self._read("SELECT body, previous FROM records WHERE stage = ?", (stage,))
        if not rows:
            return None
        body, previous = rows[0]
        candidates = [
            (Path(where), functools.partial(_decode_optional, text, Path(where)))
            for text, where in (
                (body, self.describe(stage)),
                (previous, f"{self.path}#{stage}.backup"),
            )
        ]
        loaded = load_first_readable(
            stage,
            candidates,
            lambda data, path: parse(self.paths_from_disk(data), path),
            error_path=self.path,
            advice="Nothing was changed; fix the database or reset the stage.",
        )
        if loaded is not None and loaded.restored_from_backup:
            self._damaged.add(stage)
            logger.info("Attempting to restore from backup")
            logger.warning(
                "Successfully restored %s from its backup record; the damaged record is set "
                "aside at the next save",
                stage,
            )
        return loaded

    def save(self, stage: str, record: dict[str, Any], rows: StagedRows | None = None) -> None:
        validate_stage_name(stage)
        body = json.dumps(self.paths_to_disk(record), ensure_ascii=False, separators=(",", ":"))
        now = time.time()
        damaged = stage in self._damaged
        with self._transaction(f"save checkpoint {stage!r}") as conn:
            if damaged:
                conn.execute(
                    "INSERT INTO set_aside (stage, at, body) "
                    "SELECT stage, ?, body FROM records WHERE stage = ?",
                    (now, stage),
                )
            conn.execute(_UPSERT_RECORD, (stage, body, now, damaged))
            sid = None
            if rows:
                sid = self._sid(conn, stage, create=True)
                if rows.keys:
                    # Ordinals: the record's keys_done says which keys it counts, as a
                    # journal's committed length does (see SqliteKeySet.recover).
                    first = int(record.get("keys_done") or 0) - len(rows.keys)
                    conn.executemany(
                        "INSERT OR IGNORE INTO done_keys (sid, key, n) VALUES (?, ?, ?)",
                        ((sid, key, first + i) for i, key in enumerate(rows.keys, 1)),
                    )
                if rows.ledger:
                    conn.executemany(
                        _UPSERT_LEDGER,
                        (
                            (sid, e.key, e.worker_id, e.status, e.attempts, e.error, e.at, e.at)
                            for e in rows.ledger
                        ),
                    )
            fault_point("sqlite_before_commit", self.path)
        if sid is not None:
            self._sids[stage] = sid
        fault_point("sqlite_after_commit", self.path)
        if damaged:
            self._damaged.discard(stage)
            logger.warning("Set the damaged record of %s aside (table set_aside)", stage)

    def list_stages(self) -> list[str]:
        return [row[0] for row in self._read("SELECT stage FROM records ORDER BY stage")]

    def delete(self, stage: str, *, journals: bool = True) -> bool:
        """Remove the record with its done keys and ledger rows (a restore after this is
        refused: the keys are gone); the journals in the directory only with ``journals``."""
        validate_stage_name(stage)
        removed = False
        if self.path.exists():
            with self._transaction(f"delete stage {stage!r}") as conn:
                removed = conn.execute("DELETE FROM records WHERE stage = ?", (stage,)).rowcount > 0
                sid = self._sid(conn, stage, create=False)
                if sid is not None:
                    for table in ("done_keys", "ledger"):
                        deleted = conn.execute(
                            f"DELETE FROM {table} WHERE sid = ?",  # noqa: S608 - fixed names
                            (sid,),
                        )
                        removed = deleted.rowcount > 0 or removed
        if journals:
            removed = remove_stage_journals(self.directory, stage) or removed
        self._damaged.discard(stage)
        return removed

    def modified_time(self, stage: str) -> float | None:
        rows = self._read("SELECT updated FROM records WHERE stage = ?", (stage,))
        return float(rows[0][0]) if rows else None

    # Keys ------------------------------------------------------------------------------------

    def key_set(self, stage: str) -> SqliteKeySet:
        return SqliteKeySet(self, validate_stage_name(stage))

    def _key_reader(self, stage: str) -> tuple[sqlite3.Connection, int] | None:
        """This thread's connection and the stage's id, for key lookups (None: no keys)."""
        conn = self._connection(create=False)
        if conn is None:
            return None
        sid = self._sid(conn, stage, create=False)
        return None if sid is None else (conn, sid)

    def _key_count(self, stage: str) -> int:
        """How many keys the stage has: the highest ordinal, read from the index in O(log n)
        (ordinals are handed out 1, 2, 3, ... and cut from the top), not a count of rows."""
        conn = self._connection(create=False)
        if conn is None:
            return 0
        sid = self._sid(conn, stage, create=False)
        if sid is None:
            return 0
        row = conn.execute("SELECT max(n) FROM done_keys WHERE sid = ?", (sid,)).fetchone()
        return int(row[0] or 0)

    def _cut_keys(self, stage: str, keep: int) -> int:
        """Delete the keys numbered above ``keep``; returns how many went."""
        if not self.path.exists():
            return 0
        with self._transaction(f"cut the done keys of {stage!r}") as conn:
            sid = self._sid(conn, stage, create=False)
            if sid is None:
                return 0
            return conn.execute(
                "DELETE FROM done_keys WHERE sid = ? AND n > ?", (sid, keep)
            ).rowcount

    # Ledger ----------------------------------------------------------------------------------

    def ledger_backend(self) -> SqliteStore:
        return self

    def ledger_register(self, stage: str, keys: Iterable[str]) -> int:
        validate_stage_name(stage)
        added = 0
        iterator = iter(keys)
        while batch := [str(key) for key in itertools.islice(iterator, _KEY_CHUNK)]:
            with self._transaction(f"register ledger items of {stage!r}") as conn:
                sid = self._sid(conn, stage, create=True)
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO ledger (sid, key, status) VALUES (?, ?, 'pending')",
                    ((sid, key) for key in batch),
                )
                added += conn.total_changes - before
            if sid is not None:
                self._sids[stage] = sid
        return added

    def _remaining_statuses(self, include_failed: bool) -> tuple[str, ...]:
        return ("pending", "failed") if include_failed else ("pending",)

    def ledger_remaining(self, stage: str, *, limit: int | None, include_failed: bool) -> list[str]:
        statuses = self._remaining_statuses(include_failed)
        marks = ",".join("?" * len(statuses))
        rows = self._read(
            f"SELECT l.key FROM ledger l JOIN stages s ON s.id = l.sid "  # noqa: S608 - marks only
            f"WHERE s.name = ? AND l.status IN ({marks}) ORDER BY l.id LIMIT ?",
            (stage, *statuses, -1 if limit is None else limit),
        )
        return [row[0] for row in rows]

    def ledger_count_remaining(self, stage: str, *, include_failed: bool) -> int:
        statuses = self._remaining_statuses(include_failed)
        marks = ",".join("?" * len(statuses))
        rows = self._read(
            f"SELECT count(*) FROM ledger l JOIN stages s ON s.id = l.sid "  # noqa: S608
            f"WHERE s.name = ? AND l.status IN ({marks})",
            (stage, *statuses),
        )
        return int(rows[0][0]) if rows else 0

    def ledger_count(self, stage: str) -> int:
        rows = self._read(
            "SELECT count(*) FROM ledger l JOIN stages s ON s.id = l.sid WHERE s.name = ?",
            (stage,),
        )
        return int(rows[0][0]) if rows else 0

    def ledger_statistics(self, stage: str) -> LedgerStatistics:
        where = "FROM ledger l JOIN stages s ON s.id = l.sid WHERE s.name = ?"
        finished = f"l.status IN ({','.join(repr(s) for s in FINISHED_STATUSES)})"
        by_status = dict.fromkeys(LEDGER_STATUSES, 0)
        for status, count in self._read(
            f"SELECT l.status, count(*) {where} GROUP BY l.status", (stage,)
        ):
            by_status[status] = int(count)
        by_worker: dict[str, dict[str, int]] = {}
        for worker, status, count in self._read(
            f"SELECT l.worker_id, l.status, count(*) {where} AND {finished} "
            "GROUP BY l.worker_id, l.status ORDER BY l.worker_id, l.status",
            (stage,),
        ):
            by_worker.setdefault(worker or "", {})[status] = int(count)
        attempts = {
            int(n): int(count)
            for n, count in self._read(
                f"SELECT l.attempts, count(*) {where} AND {finished} "
                "GROUP BY l.attempts ORDER BY l.attempts",
                (stage,),
            )
        }
        errors = {
            str(error): int(count)
            for error, count in self._read(
                f"SELECT l.error, count(*) AS n {where} AND l.status = 'failed' "
                "GROUP BY l.error ORDER BY n DESC, l.error",
                (stage,),
            )
        }
        span = self._read(f"SELECT min(l.first_at), max(l.last_at) {where}", (stage,))
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
        rows = self._read(
            "SELECT l.key, l.worker_id, l.status, l.attempts, l.error, l.first_at, l.last_at "
            "FROM ledger l JOIN stages s ON s.id = l.sid WHERE s.name = ? AND l.key = ?",
            (stage, key),
        )
        if not rows:
            return None
        names = ("key", "worker_id", "status", "attempts", "error", "first_at", "last_at")
        return dict(zip(names, rows[0], strict=True))

    def ledger_clear(self, stage: str) -> None:
        if not self.path.exists():
            return
        with self._transaction(f"clear the ledger of {stage!r}") as conn:
            sid = self._sid(conn, stage, create=False)
            if sid is not None:
                conn.execute("DELETE FROM ledger WHERE sid = ?", (sid,))

    # History ---------------------------------------------------------------------------------

    def save_history(self, stage: str, record: dict[str, Any], reason: str, now: float) -> str:
        validate_stage_name(stage)
        snapshot_id = snapshot_id_for(reason, now)
        body = json.dumps(self.paths_to_disk(record), ensure_ascii=False, separators=(",", ":"))
        with self._transaction(f"save a history snapshot of {stage!r}") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO history (stage, snapshot_id, created, reason, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (stage, snapshot_id, now, reason, body),
            )
        return snapshot_id

    def list_history(self, stage: str) -> list[HistoryEntry]:
        rows = self._read(
            "SELECT snapshot_id, created, reason FROM history WHERE stage = ? ORDER BY snapshot_id",
            (validate_stage_name(stage),),
        )
        return [
            HistoryEntry(stage, sid, float(created), reason, None) for sid, created, reason in rows
        ]

    def load_history(self, stage: str, snapshot_id: str) -> dict[str, Any]:
        validate_stage_name(snapshot_id)
        rows = self._read(
            "SELECT body FROM history WHERE stage = ? AND snapshot_id = ?",
            (validate_stage_name(stage), snapshot_id),
        )
        where = Path(f"{self.path}#{stage}/history/{snapshot_id}")
        if not rows:
            raise CheckpointCorruptError(
                f"no snapshot {snapshot_id!r} for stage {stage!r} in {self.path}",
                stage=stage,
                path=self.path,
            )
        record = _decode(rows[0][0], where)
        if not isinstance(record, dict):
            raise CheckpointCorruptError(
                f"snapshot {where} is not a checkpoint record", stage=stage, path=self.path
            )
        resolved: dict[str, Any] = self.paths_from_disk(record)
        return resolved

    def delete_history(self, stage: str, snapshot_id: str) -> None:
        validate_stage_name(snapshot_id)
        if not self.path.exists():
            return
        with self._transaction(f"delete snapshot {snapshot_id!r}") as conn:
            conn.execute(
                "DELETE FROM history WHERE stage = ? AND snapshot_id = ?",
                (validate_stage_name(stage), snapshot_id),
            )


class SqliteKeySet(KeySet):
    """A stage's done keys in the database; only keys not yet committed are kept in memory.

    Lookups check the keys added since the last save, then those a save is still writing, then
    the table (an indexed point query, a few microseconds from the page cache). Keys leave
    memory once the save holding them has committed: in that order, a key is always found.
    """

    committed_by_store = True

    def __init__(self, store: SqliteStore, stage: str) -> None:
        self._store = store
        self._stage = stage
        self._pending: dict[str, None] = {}
        self._in_flight: deque[set[str]] = deque()
        self._guard = threading.Lock()
        self._count = store._key_count(stage)
        # (thread, connection, stage id, store generation) of the last lookup: the hot path
        # skips the rest; a closed store's connections are never used again.
        self._reader: tuple[int, sqlite3.Connection, int, int] | None = None

    def __contains__(self, key: object) -> bool:
        if key in self._pending:
            return True
        if self._in_flight:
            with self._guard:
                if any(key in batch for batch in self._in_flight):
                    return True
        if not isinstance(key, str):
            return False
        reader = self._reader
        thread = threading.get_ident()
        try:
            if reader is None or reader[0] != thread or reader[3] != self._store._generation:
                found = self._store._key_reader(self._stage)
                if found is None:
                    return False  # nothing committed yet for this stage
                reader = self._reader = (thread, *found, self._store._generation)
            row = reader[1].execute(_KEY_LOOKUP, (reader[2], key)).fetchone()
        except sqlite3.Error as exc:
            raise self._store._error(exc) from None
        return row is not None

    def __len__(self) -> int:
        return self._count

    def add(self, key: str) -> None:
        self._pending[key] = None
        self._count += 1

    def take_pending(self) -> list[str]:
        pending, self._pending = self._pending, {}
        if pending:
            with self._guard:
                self._in_flight.append(set(pending))
        return list(pending)

    def committed(self, keys: list[str]) -> None:
        if keys:
            with self._guard:
                if self._in_flight:
                    self._in_flight.popleft()

    def clear(self) -> None:
        self.recover(0)

    def recover(self, committed: int) -> int:
        if self._pending or self._in_flight:
            self._pending = {}
            with self._guard:
                self._in_flight.clear()
        if self._count < committed:
            raise CheckpointCorruptError(
                f"{self._store.describe(self._stage)}: the checkpoint counts {committed} done "
                f"keys but the database holds {self._count}; keys are missing. Restore the "
                f"database or reset the stage",
                stage=self._stage,
                path=self._store.path,
            )
        if self._count == committed:
            return 0
        cut = self._store._cut_keys(self._stage, committed)
        self._count = committed
        if cut and committed:
            logger.info(
                "Cut %d done keys of %s the checkpoint does not count (it was restored)",
                cut,
                self._stage,
            )
        return cut


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)


def _decode_optional(text: str | None, path: Path) -> Any:
    if text is None:  # no backup record yet: absent, as a missing backup file is
        raise FileNotFoundError(str(path))
    return _decode(text, path)


def _decode(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        detail = "empty record" if not str(text).strip() else f"invalid JSON ({exc})"
        raise CheckpointCorruptError(f"checkpoint record {path}: {detail}", path=path) from None
    except RecursionError:
        raise CheckpointCorruptError(
            f"checkpoint record {path}: invalid JSON (nested too deeply)", path=path
        ) from None
