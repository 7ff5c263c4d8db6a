"""Loading a stage's items once (the starter), and reading the stage back.

The whole load is one transaction under an advisory lock on the stage's name, so two starters
never load it twice and a starter killed halfway leaves nothing loaded. A starter resuming keeps
the loaded items and only refreshes the settings workers read (config, lease length, attempt
limit). :meth:`~common.work_queue.queue.WorkQueue.load` is the public face.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from common.errors import InputChangedError
from common.work_queue.model import LoadResult, StageRecord
from common.work_queue.schema import SCHEMA_VERSION, Connection

__all__ = ["load_stage", "read_stage_record"]

logger = logging.getLogger("common.work_queue")


def load_stage(
    conn: Connection,
    stage: str,
    location: str,
    items: Iterable[tuple[str, Any]],
    *,
    input_hash: str,
    config: Mapping[str, Any],
    lease_seconds: float,
    max_attempts: int,
    force: bool,
    fresh: bool,
) -> LoadResult:
    """Load ``items`` into ``stage`` once (see :meth:`WorkQueue.load`; arguments checked there)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("rcq:" + stage,))
        existing = read_stage_record(conn, stage, lock=True)
        if existing is not None and fresh:
            conn.execute("DELETE FROM rcq_stages WHERE stage = %s", (stage,))
            logger.info("Work queue %s: forgot stage %s (fresh)", location, stage)
        elif existing is not None:
            if existing.input_hash != input_hash:
                if not force:
                    raise InputChangedError(
                        f"cannot resume stage {stage!r} in the work queue at "
                        f"{location}: its items were loaded from a different input. "
                        f"Start it fresh, or force the resume (keeps the loaded items)",
                        stage=stage,
                    )
                logger.warning("Resuming %s over a changed input (forced)", stage)
                conn.execute(
                    "UPDATE rcq_stages SET input_hash = %s WHERE stage = %s",
                    (input_hash, stage),
                )
            # Settings that do not change the output (concurrency, lease length) may
            # change between runs; workers read them from here.
            conn.execute(
                "UPDATE rcq_stages SET run_started_at = clock_timestamp(), config = %s, "
                "lease_seconds = %s, max_attempts = %s WHERE stage = %s",
                (json.dumps(dict(config)), lease_seconds, max_attempts, stage),
            )
            record = read_stage_record(conn, stage)
            assert record is not None
            return LoadResult(created=False, stage=record)
        unique = dict(items)
        conn.execute(
            "INSERT INTO rcq_stages (stage, schema_version, input_hash, config, total, "
            "lease_seconds, max_attempts) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                stage,
                SCHEMA_VERSION,
                input_hash,
                json.dumps(dict(config)),
                len(unique),
                lease_seconds,
                max_attempts,
            ),
        )
        with (
            conn.cursor() as cur,
            cur.copy("COPY rcq_items (stage, key, position, payload) FROM STDIN") as copy,
        ):
            for position, (key, payload) in enumerate(unique.items()):
                copy.write_row((stage, key, position, json.dumps(payload)))
        record = read_stage_record(conn, stage)
        assert record is not None
    # Fresh statistics for the claims' plans (autovacuum would take its time).
    conn.execute("ANALYZE rcq_items")
    logger.info("Work queue %s: loaded %d items of %s", location, record.total, stage)
    return LoadResult(created=True, stage=record)


def read_stage_record(conn: Connection, stage: str, *, lock: bool = False) -> StageRecord | None:
    """The stage as the database holds it (None: not loaded); ``lock`` locks its row."""
    row = conn.execute(
        "SELECT input_hash, config, total, lease_seconds, max_attempts, exported_at "
        "FROM rcq_stages WHERE stage = %s" + (" FOR UPDATE" if lock else ""),
        (stage,),
    ).fetchone()
    if row is None:
        return None
    input_hash, config, total, lease_seconds, max_attempts, exported_at = row
    return StageRecord(
        stage,
        input_hash,
        dict(config),
        total,
        float(lease_seconds),
        max_attempts,
        exported_at is not None,
    )
