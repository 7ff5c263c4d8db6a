"""One stage's items shared by many workers through PostgreSQL.

The starter loads the items once (:meth:`WorkQueue.load`); any number of workers, on any
machines, then loop::

    batch = queue.claim(worker_id, limit=32)      # FOR UPDATE SKIP LOCKED, leased to us
    results = [do(item) for item in batch.items]  # a LeaseKeeper thread extends the lease
    queue.commit(batch, results)                  # done states + output rows, one transaction

A worker that dies stops extending its lease; once it expires the items are claimable again and
another worker does them. A commit checks, row by row, that the batch still carries this
worker's lease token: if another worker took the batch over, the commit changes nothing and
raises :class:`LeaseLostError`, so an item is committed (and its line written) exactly once.
An item claimed ``max_attempts`` times without a commit is abandoned: marked failed, with a
failed record, instead of killing worker after worker.

Every method does blocking I/O on this object's one connection: use one ``WorkQueue`` per
thread, and from async code call it through ``anyio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import psycopg

from common.errors import InputChangedError
from common.io.process import default_worker_id
from common.journal import encode_record
from common.stores.base import validate_stage_name
from common.work_queue.dsn import describe_dsn
from common.work_queue.errors import (
    LeaseLostError,
    StageNotLoadedError,
    WorkQueueError,
    WorkQueueUnavailableError,
)
from common.work_queue.progress import QueueProgress, WorkerProgress
from common.work_queue.schema import SCHEMA_VERSION, ensure_schema

__all__ = [
    "Batch",
    "ClaimedItem",
    "ItemResult",
    "LoadResult",
    "StageRecord",
    "WorkQueue",
    "default_worker_id",
]

logger = logging.getLogger("common.work_queue")

# How stale a worker's copy of the lease length and attempt limit may get (a restarted starter
# may change them).
_SETTINGS_TTL = 10.0

Outcome = Literal["ok", "skipped", "failed"]
#: The rows of the batch this lease token holds, locked in key order: every statement that
#: touches a batch (extend, commit, release) locks it the same way, so two of them never deadlock.
_LOCK_MINE = """
    WITH mine AS (
        SELECT key FROM rcq_items
        WHERE stage = %(stage)s AND lease_token = %(token)s AND state = 'leased'
        ORDER BY key
        FOR UPDATE
    )"""
_STATE_OF: dict[str, str] = {"ok": "done", "skipped": "done", "failed": "failed"}


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """One item of a claimed batch; ``attempts`` counts this claim."""

    key: str
    position: int
    payload: Any
    attempts: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Items leased to one worker under one token until ``commit`` or ``release``."""

    stage: str
    worker: str
    token: str
    items: tuple[ClaimedItem, ...]

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What doing one item gave: ``record`` goes to the output (ok) or the sidecar (failed)."""

    key: str
    outcome: Outcome
    record: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StageRecord:
    """A loaded stage as the database holds it."""

    stage: str
    input_hash: str
    config: dict[str, Any]
    total: int
    lease_seconds: float
    max_attempts: int
    exported: bool


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What :meth:`WorkQueue.load` did: ``created`` is False when the stage was already there."""

    created: bool
    stage: StageRecord


class WorkQueue:
    """A connection to one stage's shared queue (see the module docstring).

    Args:
        dsn: PostgreSQL connection string (``postgresql://user@host:5432/db``).
        stage: the stage name (the same rules as checkpoint stage names).
        connect_timeout: seconds to wait for the server before giving up.
    """

    def __init__(self, dsn: str, stage: str, *, connect_timeout: float = 10.0) -> None:
        self.stage = validate_stage_name(stage)
        self.location = describe_dsn(dsn)
        self._cached: StageRecord | None = None
        self._cached_at = 0.0
        self._last_abandon = -math.inf
        try:
            self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                dsn,
                autocommit=True,
                connect_timeout=max(1, round(connect_timeout)),
                application_name=f"resumable-crawl {stage}"[:63],
            )
        except psycopg.Error as exc:
            raise WorkQueueUnavailableError(
                f"cannot reach the work queue at {self.location}: {_first_line(exc)}",
                stage=stage,
            ) from None
        try:
            ensure_schema(self._conn)
        except BaseException:
            self._conn.close()
            raise

    # Lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Starter ---------------------------------------------------------------------------------

    def load(
        self,
        items: Iterable[tuple[str, Any]],
        *,
        input_hash: str,
        config: Mapping[str, Any],
        lease_seconds: float = 30.0,
        max_attempts: int = 3,
        force: bool = False,
        fresh: bool = False,
    ) -> LoadResult:
        """Load ``(key, payload)`` items once; later calls with the same input keep them.

        A later call (a starter resuming) only refreshes ``config``, the lease length and the
        attempt limit, and starts a new run for the rate in :meth:`progress`.

        The items, in order, become positions 0..n-1 (a repeated key keeps its first place).
        A stage already loaded from a different input (``input_hash``) is refused with
        :class:`InputChangedError` unless ``force`` (keep the loaded items, record the new
        hash) or ``fresh`` (forget the stage, its progress and outputs, and load again).
        The whole load is one transaction: a starter killed halfway leaves nothing loaded.
        """
        if not lease_seconds > 0:
            raise WorkQueueError(f"lease_seconds must be > 0, got {lease_seconds}")
        if max_attempts < 1:
            raise WorkQueueError(f"max_attempts must be >= 1, got {max_attempts}")
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("rcq:" + self.stage,))
            existing = self._stage_record(lock=True)
            if existing is not None and fresh:
                self._conn.execute("DELETE FROM rcq_stages WHERE stage = %s", (self.stage,))
                logger.info("Work queue %s: forgot stage %s (fresh)", self.location, self.stage)
            elif existing is not None:
                if existing.input_hash != input_hash:
                    if not force:
                        raise InputChangedError(
                            f"cannot resume stage {self.stage!r} in the work queue at "
                            f"{self.location}: its items were loaded from a different input. "
                            f"Start it fresh, or force the resume (keeps the loaded items)",
                            stage=self.stage,
                        )
                    logger.warning("Resuming %s over a changed input (forced)", self.stage)
                    self._conn.execute(
                        "UPDATE rcq_stages SET input_hash = %s WHERE stage = %s",
                        (input_hash, self.stage),
                    )
                # Settings that do not change the output (concurrency, lease length) may
                # change between runs; workers read them from here.
                self._conn.execute(
                    "UPDATE rcq_stages SET run_started_at = clock_timestamp(), config = %s, "
                    "lease_seconds = %s, max_attempts = %s WHERE stage = %s",
                    (json.dumps(dict(config)), lease_seconds, max_attempts, self.stage),
                )
                record = self._stage_record()
                assert record is not None
                return LoadResult(created=False, stage=record)
            unique = dict(items)
            self._conn.execute(
                "INSERT INTO rcq_stages (stage, schema_version, input_hash, config, total, "
                "lease_seconds, max_attempts) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    self.stage,
                    SCHEMA_VERSION,
                    input_hash,
                    json.dumps(dict(config)),
                    len(unique),
                    lease_seconds,
                    max_attempts,
                ),
            )
            with (
                self._conn.cursor() as cur,
                cur.copy("COPY rcq_items (stage, key, position, payload) FROM STDIN") as copy,
            ):
                for position, (key, payload) in enumerate(unique.items()):
                    copy.write_row((self.stage, key, position, json.dumps(payload)))
            record = self._stage_record()
            assert record is not None
        # Fresh statistics for the claims' plans (autovacuum would take its time).
        self._conn.execute("ANALYZE rcq_items")
        logger.info("Work queue %s: loaded %d items of %s", self.location, record.total, self.stage)
        return LoadResult(created=True, stage=record)

    def stage_record(self) -> StageRecord:
        """The loaded stage; :class:`StageNotLoadedError` if no starter loaded it yet."""
        record = self._stage_record()
        if record is None:
            raise StageNotLoadedError(
                f"stage {self.stage!r} is not loaded in the work queue at {self.location}: "
                f"start it first (python -m enrich --workers N --dsn DSN, or the orchestrator "
                f"with --workers N --dsn DSN)",
                stage=self.stage,
            )
        return record

    def _settings(self) -> StageRecord:
        """The stage record, read again at most every few seconds: claims and extensions need
        its lease length and attempt limit, not a round trip each time."""
        now = time.monotonic()
        if self._cached is None or now - self._cached_at >= _SETTINGS_TTL:
            self._cached = self.stage_record()
            self._cached_at = now
        return self._cached

    def _stage_record(self, *, lock: bool = False) -> StageRecord | None:
        row = self._conn.execute(
            "SELECT input_hash, config, total, lease_seconds, max_attempts, exported_at "
            "FROM rcq_stages WHERE stage = %s" + (" FOR UPDATE" if lock else ""),
            (self.stage,),
        ).fetchone()
        if row is None:
            return None
        input_hash, config, total, lease_seconds, max_attempts, exported_at = row
        return StageRecord(
            self.stage,
            input_hash,
            dict(config),
            total,
            float(lease_seconds),
            max_attempts,
            exported_at is not None,
        )

    def mark_exported(self) -> None:
        """Record that the outputs were written to their files."""
        self._conn.execute(
            "UPDATE rcq_stages SET exported_at = clock_timestamp() WHERE stage = %s", (self.stage,)
        )

    def delete(self) -> bool:
        """Forget the stage: items, outputs and workers. True if it existed."""
        cursor = self._conn.execute("DELETE FROM rcq_stages WHERE stage = %s", (self.stage,))
        return cursor.rowcount > 0

    # Workers ---------------------------------------------------------------------------------

    def register_worker(
        self, worker: str, *, host: str | None = None, pid: int | None = None
    ) -> None:
        """Announce ``worker`` (shown in the aggregated progress; its heartbeat starts now)."""
        self.stage_record()
        self._conn.execute(
            "INSERT INTO rcq_workers (stage, worker, host, pid) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (stage, worker) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, "
            "started_at = clock_timestamp(), last_seen = clock_timestamp(), stopped_at = NULL",
            (self.stage, worker, host or socket.gethostname(), pid or os.getpid()),
        )

    def heartbeat(self, worker: str, *, stopped: bool = False) -> None:
        """Note that ``worker`` is alive (or, with ``stopped``, that it left cleanly)."""
        self._conn.execute(
            "UPDATE rcq_workers SET last_seen = clock_timestamp(), "
            "stopped_at = CASE WHEN %s THEN clock_timestamp() ELSE NULL END "
            "WHERE stage = %s AND worker = %s",
            (stopped, self.stage, worker),
        )

    def claim(self, worker: str, limit: int) -> Batch | None:
        """Lease up to ``limit`` claimable items to ``worker``, first positions first.

        Claimable: pending, or leased with an expired lease (a worker that died). Items past
        the attempt limit are abandoned first. Never waits for rows another claimer locked.
        Returns None when nothing is claimable right now.
        """
        if limit < 1:
            raise WorkQueueError(f"claim limit must be >= 1, got {limit}")
        record = self._settings()
        if time.monotonic() - self._last_abandon >= record.lease_seconds:
            self._abandon_exhausted(record.max_attempts)
        token = str(uuid.uuid4())
        rows = self._conn.execute(
            """
            WITH picked AS (
                SELECT key FROM rcq_items
                WHERE stage = %(stage)s
                  AND (state = 'pending'
                       OR (state = 'leased' AND lease_expires < clock_timestamp()))
                  AND attempts < %(max_attempts)s
                ORDER BY position
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            )
            -- "= ANY(ARRAY(...))": a primary-key lookup per item whatever the statistics say
            -- (a join with the CTE can be planned as a scan of the whole stage).
            UPDATE rcq_items AS i
            SET state = 'leased', lease_token = %(token)s, attempts = i.attempts + 1,
                lease_expires = clock_timestamp() + %(lease)s * interval '1 second',
                error = CASE WHEN i.state = 'leased'
                             THEN 'the lease of ' || i.worker || ' expired' ELSE i.error END,
                worker = %(worker)s, claimed_at = clock_timestamp()
            WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM picked))
            RETURNING i.key, i.position, i.payload, i.attempts
            """,
            {
                "stage": self.stage,
                "max_attempts": record.max_attempts,
                "limit": limit,
                "token": token,
                "lease": record.lease_seconds,
                "worker": worker,
            },
        ).fetchall()
        if not rows:
            # Before saying "nothing": abandoned items must not keep the stage from finishing.
            self._abandon_exhausted(record.max_attempts)
            return None
        items = sorted(
            (ClaimedItem(k, p, payload, a) for k, p, payload, a in rows),
            key=lambda item: item.position,
        )
        return Batch(self.stage, worker, token, tuple(items))

    def _abandon_exhausted(self, max_attempts: int) -> None:
        """Fail the items claimed ``max_attempts`` times that no worker ever committed.

        Run at most once a lease length by a busy claimer (such items only appear when a lease
        runs out), and whenever a claim finds nothing.
        """
        self._last_abandon = time.monotonic()
        with self._conn.transaction():
            rows = self._conn.execute(
                """
                WITH dead AS (
                    SELECT key FROM rcq_items
                    WHERE stage = %(stage)s AND attempts >= %(max_attempts)s
                      AND (state = 'pending'
                           OR (state = 'leased' AND lease_expires < clock_timestamp()))
                    ORDER BY position
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE rcq_items AS i
                SET state = 'failed', outcome = 'abandoned', lease_token = NULL,
                    lease_expires = NULL, finished_at = clock_timestamp()
                WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM dead))
                RETURNING i.key, i.position, i.attempts, i.error
                """,
                {"stage": self.stage, "max_attempts": max_attempts},
            ).fetchall()
            if not rows:
                return
            lines = []
            for key, position, attempts, error in rows:
                reason = f"abandoned after {attempts} attempts ({error or 'never committed'})"
                logger.warning("Work queue %s: %s %s", self.stage, key, reason)
                record = {"url": key, "outcome": "abandoned", "error": reason, "attempts": attempts}
                lines.append((key, position, "failed", encode_record(record).decode()))
            self._insert_outputs(lines)

    def extend(self, tokens: Iterable[str]) -> set[str]:
        """Push back the expiry of these leases; return the tokens this worker still holds."""
        record = self._settings()
        held: set[str] = set()
        for token in tokens:
            # One batch per statement, rows locked in key order: the same order a commit takes,
            # so an extension and a commit of one batch never deadlock.
            row = self._conn.execute(
                _LOCK_MINE  # noqa: S608 - constant SQL; every value is a bound parameter
                + """
                UPDATE rcq_items AS i
                SET lease_expires = clock_timestamp() + %(lease)s * interval '1 second'
                WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM mine))
                RETURNING 1
                """,
                {"stage": self.stage, "token": token, "lease": record.lease_seconds},
            ).fetchone()
            if row is not None:
                held.add(token)
        return held

    def commit(self, batch: Batch, results: Sequence[ItemResult]) -> int:
        """Mark the items of ``batch`` finished and store their lines, in one statement.

        ``results`` must cover the batch's items exactly. Only the items that still carry this
        batch's lease token are committed, each with its own line, atomically. Returns how many
        were committed; raises :class:`LeaseLostError` (its ``committed`` says how many were)
        if another worker took any of them over: those results are dropped, never doubled.
        """
        by_key = {result.key: result for result in results}
        if len(by_key) != len(results) or set(by_key) != set(batch.keys):
            raise WorkQueueError(
                f"stage {self.stage!r}: results for {sorted(by_key)[:3]}... do not match the "
                f"batch's {len(batch.items)} items",
                stage=self.stage,
            )
        columns: dict[str, list[Any]] = {
            name: []
            for name in ("keys", "states", "outcomes", "errors", "positions", "kinds", "lines")
        }
        for item in batch.items:
            result = by_key[item.key]
            columns["keys"].append(item.key)
            columns["states"].append(_STATE_OF[result.outcome])
            columns["outcomes"].append(result.outcome)
            columns["errors"].append(result.error)
            columns["positions"].append(item.position)
            columns["kinds"].append("failed" if result.outcome == "failed" else "output")
            columns["lines"].append(
                None if result.record is None else encode_record(result.record).decode()
            )
        # One statement, so one round trip and atomic on its own: the items' states and their
        # lines land together or not at all. Rows are locked in key order, as extend() does.
        row = self._conn.execute(
            _LOCK_MINE  # noqa: S608 - constant SQL; every value is a bound parameter
            + """
            , result AS (
                SELECT * FROM unnest(%(keys)s::text[], %(states)s::text[], %(outcomes)s::text[],
                                     %(errors)s::text[], %(positions)s::int[],
                                     %(kinds)s::text[], %(lines)s::text[])
                    AS r(key, state, outcome, error, position, kind, line)
            ), done AS (
                UPDATE rcq_items AS i
                SET state = result.state, outcome = result.outcome, error = result.error,
                    lease_token = NULL, lease_expires = NULL, finished_at = clock_timestamp()
                FROM result
                WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM mine))
                  AND result.key = i.key
                RETURNING i.key
            ), written AS (
                INSERT INTO rcq_outputs (stage, key, position, kind, line)
                SELECT %(stage)s, result.key, result.position, result.kind, result.line
                FROM result JOIN done USING (key)
                WHERE result.line IS NOT NULL
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM written)
            """,
            {"stage": self.stage, "token": batch.token, **columns},
        ).fetchone()
        committed = int(row[0]) if row else 0
        if committed != len(batch.items):
            raise LeaseLostError(
                f"stage {self.stage!r}: worker {batch.worker} lost the lease on "
                f"{len(batch.items) - committed} of {len(batch.items)} items (another worker "
                f"took them over); its results for those are dropped, the other {committed} "
                f"are committed",
                stage=self.stage,
                committed=committed,
            )
        return committed

    def release(self, batch: Batch, *, error: str | None = None) -> int:
        """Give ``batch`` back unfinished; return how many items were still ours.

        Without ``error`` (a clean stop) the claim does not count as an attempt; with one (the
        work itself failed) it does, so a poison item still reaches the attempt limit.
        """
        # Rows locked in key order, as extend() (the keeper may be extending this very batch)
        # and commit() do: never a deadlock between them.
        cursor = self._conn.execute(
            _LOCK_MINE  # noqa: S608 - constant SQL; every value is a bound parameter
            + """
            UPDATE rcq_items AS i
            SET state = 'pending', lease_token = NULL, lease_expires = NULL, worker = NULL,
                attempts = CASE WHEN %(error)s::text IS NULL THEN i.attempts - 1
                                ELSE i.attempts END,
                error = coalesce(%(error)s::text, i.error)
            WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM mine))
            """,
            {"stage": self.stage, "token": batch.token, "error": error},
        )
        return cursor.rowcount

    def _insert_outputs(self, lines: Sequence[tuple[str, int, str, str]]) -> None:
        if not lines:
            return
        self._conn.execute(
            "INSERT INTO rcq_outputs (stage, key, position, kind, line) "
            "SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[])",
            (
                self.stage,
                [line[0] for line in lines],
                [line[1] for line in lines],
                [line[2] for line in lines],
                [line[3] for line in lines],
            ),
        )

    # Status ----------------------------------------------------------------------------------

    def remaining(self) -> int:
        """Items not finished yet (pending or leased)."""
        row = self._conn.execute(
            "SELECT count(*) FROM rcq_items WHERE stage = %s AND state IN ('pending', 'leased')",
            (self.stage,),
        ).fetchone()
        return int(row[0]) if row else 0

    def progress(self) -> QueueProgress:
        """Counts, this run's rate and every worker's share, aggregated over all workers."""
        record = self.stage_record()
        counts: dict[str, int] = {}
        for state, outcome, count in self._conn.execute(
            "SELECT state, outcome, count(*) FROM rcq_items WHERE stage = %s "
            "GROUP BY state, outcome",
            (self.stage,),
        ):
            counts[state] = counts.get(state, 0) + count
            if outcome is not None:
                counts["outcome:" + outcome] = counts.get("outcome:" + outcome, 0) + count
        run = self._conn.execute(
            "SELECT count(i.key), extract(epoch FROM clock_timestamp() - s.run_started_at), "
            "       extract(epoch FROM max(i.finished_at) - s.run_started_at) "
            "FROM rcq_stages s LEFT JOIN rcq_items i "
            "  ON i.stage = s.stage AND i.finished_at >= s.run_started_at "
            "WHERE s.stage = %s GROUP BY s.run_started_at",
            (self.stage,),
        ).fetchone()
        run_finished, run_seconds = (int(run[0]), float(run[1])) if run else (0, 0.0)
        if run and run[2] is not None and not (counts.get("pending") or counts.get("leased")):
            run_seconds = float(run[2])  # finished: the rate stops at the last item
        per_worker: dict[str, dict[str, int]] = {}
        for worker, state, count in self._conn.execute(
            "SELECT worker, state, count(*) FROM rcq_items WHERE stage = %s "
            "AND worker IS NOT NULL GROUP BY worker, state",
            (self.stage,),
        ):
            per_worker.setdefault(worker, {})[state] = count
        workers = []
        # A live worker's keeper beats every third of a lease: three missed beats mean silent.
        alive_within = record.lease_seconds
        for worker, host, pid, age, stopped in self._conn.execute(
            "SELECT worker, host, pid, extract(epoch FROM clock_timestamp() - last_seen), "
            "stopped_at IS NOT NULL FROM rcq_workers WHERE stage = %s ORDER BY started_at, worker",
            (self.stage,),
        ):
            shares = per_worker.get(worker, {})
            workers.append(
                WorkerProgress(
                    worker=worker,
                    host=host,
                    pid=pid,
                    done=shares.get("done", 0),
                    failed=shares.get("failed", 0),
                    leased=shares.get("leased", 0),
                    seconds_since_seen=float(age),
                    stopped=bool(stopped),
                    alive=not stopped and float(age) < alive_within,
                )
            )
        return QueueProgress(
            stage=self.stage,
            total=record.total,
            successful=counts.get("outcome:ok", 0),
            skipped=counts.get("outcome:skipped", 0),
            failed=counts.get("failed", 0),
            leased=counts.get("leased", 0),
            pending=counts.get("pending", 0),
            abandoned=counts.get("outcome:abandoned", 0),
            run_finished=run_finished,
            run_seconds=max(run_seconds, 0.0),
            workers=tuple(workers),
            exported=record.exported,
        )

    def iter_lines(self) -> Iterator[tuple[str, str]]:
        """Every stored line as ``(kind, line)`` in input order, streamed from the server.

        Runs in one read-only snapshot, so the lines are consistent even if a commit lands
        meanwhile (none should: export only once nothing remains).
        """
        with (
            self._conn.transaction(),
            self._conn.cursor(name=f"rcq_export_{uuid.uuid4().hex}") as cur,
        ):
            cur.itersize = 2000
            cur.execute(
                "SELECT kind, line FROM rcq_outputs WHERE stage = %s ORDER BY position",
                (self.stage,),
            )
            yield from cur


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
