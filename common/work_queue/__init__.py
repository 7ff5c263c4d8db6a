"""Many workers, on many machines, sharing one stage through PostgreSQL (SPEC §7).

``WorkQueue`` holds one stage's items: loaded once by a starter, claimed in batches with
``FOR UPDATE SKIP LOCKED`` under a lease that a ``LeaseKeeper`` thread extends, committed with
their output lines in one ownership-checked transaction, taken over by another worker when a
lease expires. ``export_outputs`` writes the lines to the stage's files exactly once at the
end. The stage's engine record (``EnhancedCheckpoint``) is kept by the starter; this package
is the per-item ledger the workers share.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from common.work_queue.dsn import DSN_ENV, describe_dsn, resolve_dsn
from common.work_queue.errors import (
    LeaseLostError,
    StageNotLoadedError,
    WorkQueueError,
    WorkQueueUnavailableError,
)
from common.work_queue.progress import QueueProgress, WorkerProgress

if TYPE_CHECKING:
    from common.work_queue.export import ExportResult, export_outputs
    from common.work_queue.lease import LeaseKeeper
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

# What needs psycopg is imported on first use (PEP 562): a stage run without the queue, such as
# every `python -m enrich` without --workers, never pays for loading it (~0.08 s a start).
_LAZY = {
    "ExportResult": "export",
    "export_outputs": "export",
    "LeaseKeeper": "lease",
    **dict.fromkeys(
        (
            "Batch",
            "ClaimedItem",
            "ItemResult",
            "LoadResult",
            "StageRecord",
            "WorkQueue",
            "check_reachable",
            "default_worker_id",
        ),
        "queue",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
