"""Many workers, on many machines, sharing one stage through PostgreSQL (SPEC §7).

``WorkQueue`` holds one stage's items: loaded once by a starter, claimed in batches with
``FOR UPDATE SKIP LOCKED`` under a lease that a ``LeaseKeeper`` thread extends, committed with
their output lines in one ownership-checked transaction, taken over by another worker when a
lease expires. ``export_outputs`` writes the lines to the stage's files exactly once at the
end. The stage's engine record (``EnhancedCheckpoint``) is kept by the starter; this package
is the per-item ledger the workers share.
"""

from __future__ import annotations

from common.work_queue.dsn import DSN_ENV, describe_dsn, resolve_dsn
from common.work_queue.errors import (
    LeaseLostError,
    StageNotLoadedError,
    WorkQueueError,
    WorkQueueUnavailableError,
)
from common.work_queue.export import ExportResult, export_outputs
from common.work_queue.lease import LeaseKeeper
from common.work_queue.progress import QueueProgress, WorkerProgress
from common.work_queue.queue import (
    Batch,
    ClaimedItem,
    ItemResult,
    LoadResult,
    StageRecord,
    WorkQueue,
    check_reachable,
    default_worker_id,
)

__all__ = [
    "DSN_ENV",
    "Batch",
    "ClaimedItem",
    "ExportResult",
    "ItemResult",
    "LeaseKeeper",
    "LeaseLostError",
    "LoadResult",
    "QueueProgress",
    "StageNotLoadedError",
    "StageRecord",
    "WorkQueue",
    "WorkQueueError",
    "WorkQueueUnavailableError",
    "WorkerProgress",
    "check_reachable",
    "default_worker_id",
    "describe_dsn",
    "export_outputs",
    "resolve_dsn",
]
