"""The SQLite database behind the store: one connection per thread, the schema, transactions.

``<checkpoint_dir>/checkpoints.sqlite3`` is opened in WAL mode with ``synchronous=FULL`` and
created 0600; reading never creates it. Each thread gets its own connection (the engine's saver
thread writes while the owner thread reads keys); :meth:`SqliteDatabase.close` closes them all
and bumps a generation so cached connections are never used again. Database errors become the
engine's errors (:mod:`common.errors`): busy, corrupt, or a save that changed nothing.

The record store (:mod:`.store`), the done keys (:mod:`.keys`) and the ledger (:mod:`.ledger`)
share one :class:`SqliteDatabase`, so a save writes all three in one transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointSaveError,
    CheckpointSchemaError,
)
from common.io.atomic import FILE_MODE, ensure_private_dir
from common.stores.base import validate_stage_name

__all__ = ["DATABASE_NAME", "SCHEMA_VERSION", "SqliteDatabase"]

#: The database file inside the checkpoint directory (its presence marks a SQLite directory).
DATABASE_NAME = "checkpoints.sqlite3"
#: ``PRAGMA user_version`` of the schema below.
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 30_000
_SETUP_LOCK = threading.Lock()

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


class SqliteDatabase:
    """``<directory>/checkpoints.sqlite3``: per-thread connections, schema, transactions.

    Thread-safe. Reading methods never create the database.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DATABASE_NAME
        self._local = threading.local()
        self._guard = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._schema_ready = False
        self._generation = 0  # bumped by close(): cached connections are stale
        self._sids: dict[str, int] = {}

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
                    # Never on a crawl's reactor while it fetches (tests/test_loop_retries.py).
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

    def describe(self, stage: str) -> str:
        """Where ``stage``'s record lives, for error messages."""
        return f"{self.path}#{validate_stage_name(stage)}"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)
