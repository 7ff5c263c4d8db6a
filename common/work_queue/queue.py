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

This module is the public face: the loading lives in :mod:`.loading`, the lease protocol
(claim, extend, commit, release, abandon) in :mod:`.claims`, the values in :mod:`.model`.

Every method does blocking I/O on this object's one connection: use one ``WorkQueue`` per
thread, and from async code call it through ``anyio.to_thread``.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import psycopg

from common.io.process import default_worker_id
from common.stores.base import validate_stage_name
from common.work_queue.claims import (
    abandon_exhausted,
    claim_batch,
    commit_batch,
    extend_leases,
    release_batch,
)
from common.work_queue.dsn import describe_dsn
from common.work_queue.errors import StageNotLoadedError, WorkQueueError, WorkQueueUnavailableError
from common.work_queue.loading import load_stage, read_stage_record
from common.work_queue.model import Batch, ClaimedItem, ItemResult, LoadResult, StageRecord
from common.work_queue.progress import QueueProgress, WorkerProgress
from common.work_queue.schema import Connection, ensure_schema

__all__ = [
    "Batch",
    "ClaimedItem",
    "ItemResult",
    "LoadResult",
    "StageRecord",
    "WorkQueue",
    "check_reachable",
    "default_worker_id",
]

logger = logging.getLogger("common.work_queue")

# How stale a worker's copy of the lease length and attempt limit may get (a restarted starter
# may change them).
_SETTINGS_TTL = 10.0


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
        self._conn: Connection = _connect(dsn, self.stage, connect_timeout)
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
        return load_stage(
            self._conn,
            self.stage,
            self.location,
            items,
            input_hash=input_hash,
            config=config,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            force=force,
            fresh=fresh,
        )

    def stage_record(self) -> StageRecord:
        """The loaded stage; :class:`StageNotLoadedError` if no starter loaded it yet."""
        record = read_stage_record(self._conn, self.stage)
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
        batch = claim_batch(self._conn, self.stage, worker, limit, record)
        if batch is None:
            # Before saying "nothing": abandoned items must not keep the stage from finishing.
            self._abandon_exhausted(record.max_attempts)
        return batch

    def _abandon_exhausted(self, max_attempts: int) -> None:
        self._last_abandon = time.monotonic()
        abandon_exhausted(self._conn, self.stage, max_attempts)

    def extend(self, tokens: Iterable[str]) -> set[str]:
        """Push back the expiry of these leases; return the tokens this worker still holds."""
        return extend_leases(self._conn, self.stage, tokens, self._settings().lease_seconds)

    def commit(self, batch: Batch, results: Sequence[ItemResult]) -> int:
        """Mark the items of ``batch`` finished and store their lines, in one statement.

        ``results`` must cover the batch's items exactly. Only the items that still carry this
        batch's lease token are committed, each with its own line, atomically. Returns how many
        were committed; raises :class:`LeaseLostError` (its ``committed`` says how many were)
        if another worker took any of them over: those results are dropped, never doubled.
        """
        return commit_batch(self._conn, self.stage, batch, results)

    def release(self, batch: Batch, *, error: str | None = None) -> int:
        """Give ``batch`` back unfinished; return how many items were still ours.

        Without ``error`` (a clean stop) the claim does not count as an attempt; with one (the
        work itself failed) it does, so a poison item still reaches the attempt limit.
        """
        return release_batch(self._conn, self.stage, batch, error)

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


def check_reachable(dsn: str, stage: str, *, connect_timeout: float = 10.0) -> None:
    """Connect once and disconnect: ``WorkQueueUnavailableError`` (the address, no password)
    when the server cannot be reached, so a run can say so before it starts anything."""
    _connect(dsn, validate_stage_name(stage), connect_timeout).close()


def _connect(dsn: str, stage: str, connect_timeout: float) -> Connection:
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout)),
            application_name=f"resumable-crawl {stage}"[:63],
        )
    except psycopg.Error as exc:
        raise WorkQueueUnavailableError(
            f"cannot reach the work queue at {describe_dsn(dsn)}: {_first_line(exc)}",
            stage=stage,
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
