"""The queue's tables, created once per database (idempotent, safe to race).

``rcq_stages``   one row per stage: input hash, worker config, lease length, attempt limit.
``rcq_items``    one row per item: state (pending, leased, done, failed), lease token and expiry,
                 attempts, the worker that holds or finished it, outcome and error.
``rcq_outputs``  one row per finished item that writes a line: the exact JSON Lines text, for
                 the stage output (``output``) or its failed-items sidecar (``failed``). Its
                 primary key (stage, key) makes a second line for one item impossible.
``rcq_workers``  one row per worker process: host, pid, heartbeat, stop time.

Lease times come from the database clock (``clock_timestamp()``), never a worker's, so workers
on machines whose clocks disagree still agree on when a lease has expired.
"""

from __future__ import annotations

from typing import Any

import psycopg

#: A connection as the queue's modules use it (rows as tuples).
Connection = psycopg.Connection[tuple[Any, ...]]

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION = 1

# Any constant works; it only has to be the same in every process that creates the tables.
_SCHEMA_LOCK = 0x72637100

_DDL = """
CREATE TABLE IF NOT EXISTS rcq_stages (
    stage          text PRIMARY KEY,
    schema_version integer NOT NULL,
    input_hash     text NOT NULL,
    config         jsonb NOT NULL,
    total          integer NOT NULL,
    lease_seconds  double precision NOT NULL CHECK (lease_seconds > 0),
    max_attempts   integer NOT NULL CHECK (max_attempts >= 1),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    exported_at    timestamptz
);
CREATE TABLE IF NOT EXISTS rcq_items (
    stage         text NOT NULL REFERENCES rcq_stages (stage) ON DELETE CASCADE,
    key           text NOT NULL,
    position      integer NOT NULL,
    payload       jsonb,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'leased', 'done', 'failed')),
    lease_token   uuid,
    lease_expires timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    worker        text,
    outcome       text,
    error         text,
    claimed_at    timestamptz,
    finished_at   timestamptz,
    PRIMARY KEY (stage, key),
    UNIQUE (stage, position)
);
CREATE INDEX IF NOT EXISTS rcq_items_open ON rcq_items (stage, position)
    WHERE state IN ('pending', 'leased');
CREATE INDEX IF NOT EXISTS rcq_items_token ON rcq_items (lease_token)
    WHERE lease_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS rcq_outputs (
    stage      text NOT NULL,
    key        text NOT NULL,
    position   integer NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('output', 'failed')),
    line       text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (stage, key),
    FOREIGN KEY (stage, key) REFERENCES rcq_items (stage, key) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS rcq_outputs_export ON rcq_outputs (stage, position);
CREATE TABLE IF NOT EXISTS rcq_workers (
    stage      text NOT NULL REFERENCES rcq_stages (stage) ON DELETE CASCADE,
    worker     text NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen  timestamptz NOT NULL DEFAULT clock_timestamp(),
    stopped_at timestamptz,
    PRIMARY KEY (stage, worker)
);
"""


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the queue's tables if they are missing (concurrent callers are serialized)."""
    with conn.transaction():
        # CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE of the same name.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(_DDL)  # type: ignore[arg-type]  # a constant, several statements
