"""Plain-text cells and tables (seed 003's layout), pure functions of ``StageInfo``."""

from __future__ import annotations

from collections.abc import Sequence

from common.manager import StageInfo
from common.progress import ProgressSnapshot, format_duration
from common.state import utc_iso
from common.status import CheckpointStatus


def iso_text(timestamp: float | None) -> str:
    """``utc_iso`` of ``timestamp``, ``-`` for None."""
    return "-" if timestamp is None else utc_iso(timestamp)


LIST_HEADERS = ("Stage", "Status", "Progress", "Success Rate", "Updated")

WATCH_HEADERS = ("Stage", "Status", "Progress", "Success", "Rate", "ETA", "Updated")


def status_label(info: StageInfo) -> str:
    """``running``, ``running (live)`` when another process holds the stage, ``corrupt``, ..."""
    return info.status + (" (live)" if info.live else "")


def progress_text(info: StageInfo) -> str:
    """Seed 003's ``n/N (x%)``; ``n/?`` while the total is unknown."""
    snap = info.progress()
    if snap is None or info.state is None:
        return "-"
    if snap.total > 0:
        return f"{snap.processed}/{snap.total} ({snap.percent:.1f}%)"
    if info.state.status is CheckpointStatus.COMPLETED:
        return f"{snap.processed}/? (100.0%)"
    return f"{snap.processed}/? (-)"


def success_text(snap: ProgressSnapshot | None) -> str:
    """Success rate in percent, ``-`` while no item has finished either way."""
    if snap is None or snap.successful + snap.failed == 0:
        return "-"
    return f"{snap.success_rate:.1f}%"


#: A stage is worked on only in these statuses: only they have an ETA.
ACTIVE_STATUSES = frozenset({CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING})


def eta_seconds_of(info: StageInfo) -> float | None:
    """Seconds to go while the stage runs (or recovers); None for any other status."""
    snap = info.progress()
    if snap is None or info.state is None or info.state.status not in ACTIVE_STATUSES:
        return None
    return snap.eta_seconds


def eta_label(status: str, eta_seconds: float | None) -> str:
    """The ETA cell: ``done`` (completed), ``paused``, the estimate while running, else ``-``."""
    if status == CheckpointStatus.COMPLETED.value:
        return "done"
    if status == CheckpointStatus.PAUSED.value:
        return "paused"
    if status in {s.value for s in ACTIVE_STATUSES}:
        return format_duration(eta_seconds)
    return "-"


def eta_text(info: StageInfo) -> str:
    """:func:`eta_label` of a stage (``-`` when its checkpoint is unreadable)."""
    if info.state is None:
        return "-"
    return eta_label(info.state.status.value, eta_seconds_of(info))


def _throughput_text(snap: ProgressSnapshot | None) -> str:
    if snap is None:
        return "-"
    rate = snap.throughput
    return f"{rate:.1f}/s" if rate >= 1 or rate == 0 else f"{rate:.2g}/s"


def updated_text(info: StageInfo, modified: float | None = None) -> str:
    """The checkpoint's ``updated_at`` (or the file's time for an unreadable one)."""
    if info.state is not None and info.state.updated_at:
        return info.state.updated_at
    return iso_text(modified)


def list_row(info: StageInfo, modified: float | None = None) -> list[str]:
    """One row of ``list``: Stage, Status, Progress, Success Rate, Updated."""
    return [
        info.stage,
        status_label(info),
        progress_text(info),
        success_text(info.progress()),
        updated_text(info, modified),
    ]


def watch_row(info: StageInfo, modified: float | None = None) -> list[str]:
    """One row of ``watch``: the list columns plus throughput and ETA, time of day only."""
    updated = updated_text(info, modified)
    return [
        info.stage,
        status_label(info),
        progress_text(info),
        success_text(info.progress()),
        _throughput_text(info.progress()),
        eta_text(info),
        updated[5:].replace("T", " ") if len(updated) == 19 else updated,
    ]


def format_plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Seed 003's layout: padded columns, a rule of ``=`` under the header line."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    header = line(headers)
    out = [header, "=" * max(len(header), sum(widths) + 2 * (len(widths) - 1))]
    out.extend(line(row) for row in rows)
    return "\n".join(out)
