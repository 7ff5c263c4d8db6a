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

# What needs psycopg is imported on first use (PEP 562): a stage run without the queue, such as
# every `python -m enrich` without --workers, never pays for loading it (~0.08 s a start). The
# names are each of these modules' own __all__ (queue first: the other two import it anyway).
_LAZY_MODULES = ("queue", "export", "lease")

if TYPE_CHECKING:  # the same names for mypy, read from the same __all__ lists
    from common.work_queue.export import *  # noqa: F403
    from common.work_queue.lease import *  # noqa: F403
    from common.work_queue.queue import *  # noqa: F403


def __getattr__(name: str) -> Any:
    if not name.startswith("_"):  # a probe for a dunder (copy, inspect, pytest) loads nothing
        for module_name in _LAZY_MODULES:
            module = importlib.import_module(f"{__name__}.{module_name}")
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# What is loaded with the package; `from common.work_queue import X` works as well for every X
# in the __all__ of .queue, .export and .lease.
__all__ = [
    "DSN_ENV",
    "LeaseLostError",
    "QueueProgress",
    "StageNotLoadedError",
    "WorkQueueError",
    "WorkQueueUnavailableError",
    "WorkerProgress",
    "describe_dsn",
    "resolve_dsn",
]
