"""A stage's done keys in the SQLite database (table ``done_keys``), not in memory.

Reopening a stage with millions of keys done reads nothing but its count, and ``key in keys``
is an indexed lookup. Each key carries an ordinal (1, 2, 3, ...): the record's ``keys_done``
says which keys it counts, as a journal's committed length does, so keys a restored record does
not count are cut from the top (:meth:`SqliteKeySet.recover`). The keys of a save are written
by :func:`write_keys` inside the store's save transaction, with the record that counts them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque

from common.errors import CheckpointCorruptError
from common.stores.base import KeySet
from common.stores.sqlite.database import SqliteDatabase

__all__ = ["SqliteKeySet", "write_keys"]

logger = logging.getLogger(__name__)

_KEY_LOOKUP = "SELECT 1 FROM done_keys WHERE sid = ? AND key = ?"


def write_keys(conn: sqlite3.Connection, sid: int, keys: list[str], counted: int) -> None:
    """Insert ``keys``, the last ones of the ``counted`` keys a record counts, numbered so
    that the last is ``counted`` (see :meth:`SqliteKeySet.recover`)."""
    first = counted - len(keys)
    conn.executemany(
        "INSERT OR IGNORE INTO done_keys (sid, key, n) VALUES (?, ?, ?)",
        ((sid, key, first + i) for i, key in enumerate(keys, 1)),
    )


class SqliteKeySet(KeySet):
    """A stage's done keys in the database; only keys not yet committed are kept in memory.

    Lookups check the keys added since the last save, then those a save is still writing, then
    the table (an indexed point query, a few microseconds from the page cache). Keys leave
    memory once the save holding them has committed: in that order, a key is always found.
    """

    committed_by_store = True

    def __init__(self, database: SqliteDatabase, stage: str) -> None:
        self._db = database
        self._stage = stage
        self._pending: dict[str, None] = {}
        self._in_flight: deque[set[str]] = deque()
        self._guard = threading.Lock()
        self._count = self._key_count()
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
            if reader is None or reader[0] != thread or reader[3] != self._db._generation:
                found = self._key_reader()
                if found is None:
                    return False  # nothing committed yet for this stage
                reader = self._reader = (thread, *found, self._db._generation)
            row = reader[1].execute(_KEY_LOOKUP, (reader[2], key)).fetchone()
        except sqlite3.Error as exc:
            raise self._db._error(exc) from None
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
                f"{self._db.describe(self._stage)}: the checkpoint counts {committed} done "
                f"keys but the database holds {self._count}; keys are missing. Restore the "
                f"database or reset the stage",
                stage=self._stage,
                path=self._db.path,
            )
        if self._count == committed:
            return 0
        cut = self._cut_keys(committed)
        self._count = committed
        if cut and committed:
            logger.info(
                "Cut %d done keys of %s the checkpoint does not count (it was restored)",
                cut,
                self._stage,
            )
        return cut

    def _key_reader(self) -> tuple[sqlite3.Connection, int] | None:
        """This thread's connection and the stage's id, for key lookups (None: no keys)."""
        conn = self._db._connection(create=False)
        if conn is None:
            return None
        sid = self._db._sid(conn, self._stage, create=False)
        return None if sid is None else (conn, sid)

    def _key_count(self) -> int:
        """How many keys the stage has: the highest ordinal, read from the index in O(log n)
        (ordinals are handed out 1, 2, 3, ... and cut from the top), not a count of rows."""
        conn = self._db._connection(create=False)
        if conn is None:
            return 0
        sid = self._db._sid(conn, self._stage, create=False)
        if sid is None:
            return 0
        row = conn.execute("SELECT max(n) FROM done_keys WHERE sid = ?", (sid,)).fetchone()
        return int(row[0] or 0)

    def _cut_keys(self, keep: int) -> int:
        """Delete the keys numbered above ``keep``; returns how many went."""
        if not self._db.path.exists():
            return 0
        with self._db._transaction(f"cut the done keys of {self._stage!r}") as conn:
            sid = self._db._sid(conn, self._stage, create=False)
            if sid is None:
                return 0
            return conn.execute(
                "DELETE FROM done_keys WHERE sid = ? AND n > ?", (sid, keep)
            ).rowcount
