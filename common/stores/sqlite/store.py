"""The SQLite store: every stage of a checkpoint directory in one database (stdlib ``sqlite3``).

``<checkpoint_dir>/checkpoints.sqlite3`` (WAL, ``synchronous=FULL``, created 0600; the
connections, schema and transactions: :mod:`.database`) holds each stage's record and the one
before it (the backup), its timestamped history, its done keys (:mod:`.keys`) and its per-item
ledger (:mod:`.ledger`, :mod:`common.ledger`). A save is one transaction: the record, the keys
it counts and the ledger rows of the items it counts commit together or not at all, so a
SIGKILL or power cut at any instant leaves the previous or the new state, never a mix.

Append-only journals (stage outputs, the Scrapy request journal) stay files beside the
database, as with the JSON store, and the writer lock is the same per-stage ``fcntl`` lock file
(a SIGKILLed writer leaves none).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from common.errors import CheckpointCorruptError
from common.io.faults import fault_point
from common.io.locking import StageLock
from common.journal import is_stage_journal, remove_stage_journals, stage_journal_path
from common.stores.base import (
    CheckpointStore,
    HistoryEntry,
    LoadedRecord,
    StagedRows,
    load_first_readable,
    snapshot_id_for,
    validate_stage_name,
)
from common.stores.sqlite.database import SqliteDatabase
from common.stores.sqlite.keys import SqliteKeySet, write_keys
from common.stores.sqlite.ledger import SqliteLedger, write_ledger_rows

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_UPSERT_RECORD = """
INSERT INTO records (stage, body, previous, updated) VALUES (?, ?, NULL, ?)
ON CONFLICT (stage) DO UPDATE SET
    previous = CASE WHEN ? THEN records.previous ELSE records.body END,
    body = excluded.body,
    updated = excluded.updated
"""


class SqliteStore(SqliteDatabase, CheckpointStore):
    """Checkpoint records, history, done keys and ledgers in ``<directory>/checkpoints.sqlite3``.

    Thread-safe: each thread gets its own connection (the engine's saver thread writes while
    the owner thread reads keys). Reading methods never create the database.
    """

    def __init__(self, directory: Path | str) -> None:
        super().__init__(directory)
        self.location = str(self.path)
        self.data_dir = Path(os.path.abspath(self.directory)).parent
        self._ledger = SqliteLedger(self)
        # Stages whose record was found damaged: the next save sets it aside instead of making
        # it the backup, so the good backup is never replaced by garbage.
        self._damaged: set[str] = set()

    # Locations -------------------------------------------------------------------------------

    def journal_path(self, stage: str, name: str) -> Path:
        return stage_journal_path(self.directory, validate_stage_name(stage), name)

    def lock(self, stage: str) -> StageLock:
        return StageLock(self.directory / f"{validate_stage_name(stage)}.lock", stage)

    def owns_file(self, stage: str, path: Path | str) -> bool:
        target = os.path.realpath(path)
        database = os.path.realpath(self.path)
        return (
            any(target == database + suffix for suffix in ("", "-wal", "-shm", "-journal"))
            or target == os.path.realpath(self.lock(stage).path)
            or is_stage_journal(self.directory, validate_stage_name(stage), path)
        )

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
                assert sid is not None  # create=True
                if rows.keys:
                    write_keys(conn, sid, rows.keys, int(record.get("keys_done") or 0))
                if rows.ledger:
                    write_ledger_rows(conn, sid, rows.ledger)
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

    # Keys and ledger -------------------------------------------------------------------------

    def key_set(self, stage: str) -> SqliteKeySet:
        return SqliteKeySet(self, validate_stage_name(stage))

    def ledger_backend(self) -> SqliteLedger:
        return self._ledger

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
