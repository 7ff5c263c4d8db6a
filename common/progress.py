"""Progress maths as pure functions of counts and clock readings.

Nothing here reads a clock or does I/O, so every formula is tested without time passing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ProgressSnapshot",
    "eta_seconds",
    "format_duration",
    "format_progress_line",
    "percent_complete",
    "progress_line",
    "success_rate",
    "throughput",
]


def percent_complete(processed: int, total: int) -> float:
    """Share of ``total`` done, in percent; 0 when the total is unknown (0)."""
    if total <= 0:
        return 0.0
    return min(100.0, 100.0 * processed / total)


def success_rate(successful: int, failed: int) -> float:
    """Successful items over items that finished either way, in percent (100 when none did)."""
    finished = successful + failed
    if finished <= 0:
        return 100.0
    return 100.0 * successful / finished


def throughput(processed: int, active_seconds: float) -> float:
    """Items per second over the time the stage actually ran."""
    if active_seconds <= 0:
        return 0.0
    return processed / active_seconds


def eta_seconds(processed: int, total: int, items_per_second: float) -> float | None:
    """Seconds until ``total`` at the current rate; None when it cannot be estimated."""
    if total <= 0 or items_per_second <= 0:
        return None
    return max(0, total - processed) / items_per_second


def format_duration(seconds: float | None) -> str:
    """Seed 003 style: ``45.0 sec``, ``2.4 min``, ``1.5 hours``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} sec"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} hours"


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """A stage's progress at one instant, with the derived figures filled in."""

    total: int
    processed: int
    successful: int
    failed: int
    skipped: int
    active_seconds: float

    @property
    def percent(self) -> float:
        return percent_complete(self.processed, self.total)

    @property
    def success_rate(self) -> float:
        return success_rate(self.successful, self.failed)

    @property
    def throughput(self) -> float:
        return throughput(self.processed, self.active_seconds)

    @property
    def eta_seconds(self) -> float | None:
        return eta_seconds(self.processed, self.total, self.throughput)


def format_progress_line(
    snapshot: ProgressSnapshot,
    *,
    middle: Sequence[str] | None = None,
    suffix: Sequence[str] = (),
) -> str:
    """The seed's log line; every progress line of the project is this one.

    ``Progress: 45.5% (5000/11000) | Success: 98.2% | Throughput: 42.3 items/sec | ETA: 2.4 min``

    ``middle`` replaces the ``Success`` field (the work queue shows failures and leases
    there); ``suffix`` fields follow the ETA. Before any item finished the success rate is
    ``unknown``, as the ETA is (not a 100% nothing earned).
    """
    finished = snapshot.successful + snapshot.failed > 0
    success = f"{snapshot.success_rate:.1f}%" if finished else "unknown"
    return progress_line(
        snapshot.percent,
        snapshot.processed,
        snapshot.total,
        snapshot.throughput,
        snapshot.eta_seconds,
        middle=[f"Success: {success}"] if middle is None else middle,
        suffix=suffix,
    )


def progress_line(
    percent: float,
    processed: int,
    total: int,
    items_per_second: float,
    eta: float | None,
    *,
    middle: Sequence[str] = (),
    suffix: Sequence[str] = (),
) -> str:
    """The fields of :func:`format_progress_line` from figures computed elsewhere."""
    return " | ".join(
        [
            f"Progress: {percent:.1f}% ({processed}/{total})",
            *middle,
            f"Throughput: {items_per_second:.1f} items/sec",
            f"ETA: {format_duration(eta)}",
            *suffix,
        ]
    )
