"""The lease protocol: claim a batch, extend its lease, commit or release it, abandon the dead.

Every statement that touches a claimed batch locks its rows in key order (``_LOCK_MINE``), so
an extension by the worker's :class:`~common.work_queue.lease.LeaseKeeper`, a commit and a
release of one batch never deadlock. A commit writes the items' states and their output lines
in one statement, and only for the rows still carrying the batch's lease token: a batch taken
over by another worker is never committed twice. :class:`~common.work_queue.queue.WorkQueue`
is the public face; these functions run on its connection.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from common.journal import encode_record
from common.work_queue.errors import LeaseLostError, WorkQueueError
from common.work_queue.model import Batch, ClaimedItem, ItemResult, StageRecord
from common.work_queue.schema import Connection

__all__ = ["abandon_exhausted", "claim_batch", "commit_batch", "extend_leases", "release_batch"]

logger = logging.getLogger("common.work_queue")

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


def claim_batch(
    conn: Connection, stage: str, worker: str, limit: int, record: StageRecord
) -> Batch | None:
    """Lease up to ``limit`` claimable items to ``worker`` (see :meth:`WorkQueue.claim`)."""
    token = str(uuid.uuid4())
    rows = conn.execute(
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
            "stage": stage,
            "max_attempts": record.max_attempts,
            "limit": limit,
            "token": token,
            "lease": record.lease_seconds,
            "worker": worker,
        },
    ).fetchall()
    if not rows:
        return None
    items = sorted(
        (ClaimedItem(k, p, payload, a) for k, p, payload, a in rows),
        key=lambda item: item.position,
    )
    return Batch(stage, worker, token, tuple(items))


def abandon_exhausted(conn: Connection, stage: str, max_attempts: int) -> None:
    """Fail the items claimed ``max_attempts`` times that no worker ever committed.

    Run at most once a lease length by a busy claimer (such items only appear when a lease
    runs out), and whenever a claim finds nothing.
    """
    with conn.transaction():
        rows = conn.execute(
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
            {"stage": stage, "max_attempts": max_attempts},
        ).fetchall()
        if not rows:
            return
        lines = []
        for key, position, attempts, error in rows:
            reason = f"abandoned after {attempts} attempts ({error or 'never committed'})"
            logger.warning("Work queue %s: %s %s", stage, key, reason)
            record = {"url": key, "outcome": "abandoned", "error": reason, "attempts": attempts}
            lines.append((key, position, "failed", encode_record(record).decode()))
        _insert_outputs(conn, stage, lines)


def extend_leases(
    conn: Connection, stage: str, tokens: Iterable[str], lease_seconds: float
) -> set[str]:
    """Push back the expiry of these leases (see :meth:`WorkQueue.extend`)."""
    held: set[str] = set()
    for token in tokens:
        # One batch per statement, rows locked in key order: the same order a commit takes,
        # so an extension and a commit of one batch never deadlock.
        row = conn.execute(
            _LOCK_MINE  # noqa: S608 - constant SQL; every value is a bound parameter
            + """
            UPDATE rcq_items AS i
            SET lease_expires = clock_timestamp() + %(lease)s * interval '1 second'
            WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM mine))
            RETURNING 1
            """,
            {"stage": stage, "token": token, "lease": lease_seconds},
        ).fetchone()
        if row is not None:
            held.add(token)
    return held


def commit_batch(conn: Connection, stage: str, batch: Batch, results: Sequence[ItemResult]) -> int:
    """Mark the items of ``batch`` finished with their lines (see :meth:`WorkQueue.commit`)."""
    by_key = {result.key: result for result in results}
    if len(by_key) != len(results) or set(by_key) != set(batch.keys):
        raise WorkQueueError(
            f"stage {stage!r}: results for {sorted(by_key)[:3]}... do not match the "
            f"batch's {len(batch.items)} items",
            stage=stage,
        )
    columns: dict[str, list[Any]] = {
        name: [] for name in ("keys", "states", "outcomes", "errors", "positions", "kinds", "lines")
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
    row = conn.execute(
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
        {"stage": stage, "token": batch.token, **columns},
    ).fetchone()
    committed = int(row[0]) if row else 0
    if committed != len(batch.items):
        raise LeaseLostError(
            f"stage {stage!r}: worker {batch.worker} lost the lease on "
            f"{len(batch.items) - committed} of {len(batch.items)} items (another worker "
            f"took them over); its results for those are dropped, the other {committed} "
            f"are committed",
            stage=stage,
            committed=committed,
        )
    return committed


def release_batch(conn: Connection, stage: str, batch: Batch, error: str | None) -> int:
    """Give ``batch`` back unfinished (see :meth:`WorkQueue.release`)."""
    # Rows locked in key order, as extend() (the keeper may be extending this very batch)
    # and commit() do: never a deadlock between them.
    cursor = conn.execute(
        _LOCK_MINE  # noqa: S608 - constant SQL; every value is a bound parameter
        + """
        UPDATE rcq_items AS i
        SET state = 'pending', lease_token = NULL, lease_expires = NULL, worker = NULL,
            attempts = CASE WHEN %(error)s::text IS NULL THEN i.attempts - 1
                            ELSE i.attempts END,
            error = coalesce(%(error)s::text, i.error)
        WHERE i.stage = %(stage)s AND i.key = ANY(ARRAY(SELECT key FROM mine))
        """,
        {"stage": stage, "token": batch.token, "error": error},
    )
    return cursor.rowcount


def _insert_outputs(
    conn: Connection, stage: str, lines: Sequence[tuple[str, int, str, str]]
) -> None:
    if not lines:
        return
    conn.execute(
        "INSERT INTO rcq_outputs (stage, key, position, kind, line) "
        "SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[])",
        (
            stage,
            [line[0] for line in lines],
            [line[1] for line in lines],
            [line[2] for line in lines],
            [line[3] for line in lines],
        ),
    )
