"""What a person sees: live bars or progress lines while stages run, and the final summary.

Everything here fits an 80-column terminal: stages are shown by their short names
(``discovery``), durations compactly (``2m05s``), and the summary is a borderless table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from common.manager import StageInfo
from common.progress import format_progress_line
from common.status import CheckpointStatus
from enrich.reasons import not_fetched_reasons
from tools.orchestrator.stage_table import StageSpec, short_name

__all__ = ["ProgressView", "StageOutcome", "short_duration", "summary_lines", "summary_table"]

logger = logging.getLogger("tools.orchestrator")

_IN_FLIGHT = frozenset(
    s.value
    for s in (CheckpointStatus.INITIALIZED, CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING)
)


def short_duration(seconds: float | None) -> str:
    """``45s``, ``2m05s``, ``1h02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _workers_detail(info: StageInfo) -> str:
    """`` 4 workers`` for a stage shared through PostgreSQL (its record lists them)."""
    shared = info.state.metadata.get("work_queue") if info.state is not None else None
    if not isinstance(shared, dict):
        return ""
    workers = shared.get("workers") or []
    alive = sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "alive")
    return f" {alive} workers"


class ProgressView:
    """A bar per stage on a terminal; the seed's log lines otherwise."""

    def __init__(self, console: Console, stages: Sequence[StageSpec], live: bool) -> None:
        self.console = console
        self.live_enabled = live
        self.progress = Progress(
            TextColumn("{task.fields[stage]:<10}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]:<9}"),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {
            s.name: self.progress.add_task(
                s.name, total=None, stage=s.alias, status="waiting", detail=""
            )
            for s in stages
        }
        self._live: Live | None = None
        self._last_line = 0.0
        self._last_text = ""

    def __enter__(self) -> ProgressView:
        if self.live_enabled:
            # No refresh thread: children are forked from this process, and forking while
            # another thread holds a lock can deadlock the child.
            self._live = Live(self.progress, console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the live view (idempotent): the cursor ends on a fresh line."""
        live, self._live = self._live, None
        if live is not None:
            live.refresh()
            live.__exit__(None, None, None)

    def show(self, info: StageInfo, *, force_line: bool = False) -> None:
        """Update ``info.stage``'s bar (or, piped, log a progress line every 5 s)."""
        task = self.tasks[info.stage]
        snapshot = info.progress()
        status = info.status
        if snapshot is None or info.state is None:
            self.progress.update(task, status=status, detail=(info.error or "")[:30])
        else:
            total = snapshot.total or None
            if info.state.status is CheckpointStatus.COMPLETED:
                total = snapshot.processed
            # No rate before an item finished: "100% ok" at 0 of 0 said more than was known.
            rate = (
                f"{snapshot.success_rate:.0f}% ok " if snapshot.successful + snapshot.failed else ""
            )
            detail = f"{rate}{snapshot.throughput:.0f}/s ETA {short_duration(snapshot.eta_seconds)}"
            detail += _workers_detail(info)
            self.progress.update(
                task, total=total, completed=snapshot.processed, status=status, detail=detail
            )
            now = time.monotonic()
            if not self.live_enabled and (force_line or now - self._last_line >= 5.0):
                line = f"{info.stage}: {format_progress_line(snapshot)}"
                if line != self._last_text:  # a stage that did nothing since says nothing
                    self._last_line, self._last_text = now, line
                    logger.info("%s", line)
        if self._live is not None:
            self._live.refresh()

    def note(self, stage: str, status: str, detail: str = "") -> None:
        """Set a stage's status text (``running``, ``skipped`` ...)."""
        self.progress.update(self.tasks[stage], status=status, detail=detail[:30])
        if self._live is not None:
            self._live.refresh()

    def stop_running(self, detail: str) -> None:
        """Every bar of a stage in flight (initialized, running or recovering) says ``stopped``
        and ``detail`` instead."""
        for task in self.progress.tasks:
            if task.fields.get("status") in _IN_FLIGHT:
                self.progress.update(task.id, status="stopped", detail=detail[:30])
        if self._live is not None:
            self._live.refresh()


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """One stage of this run, for the summary."""

    spec: StageSpec
    info: StageInfo
    ran: bool  # False: skipped as already completed


def summary_table(outcomes: Sequence[StageOutcome]) -> Table:
    """The per-stage figures, about 70 columns wide."""
    table = Table(title="Pipeline summary", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Stage", "Status", "Done", "OK", "Failed", "Rate", "Time"):
        left = column in ("Stage", "Status")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for outcome in outcomes:
        info = outcome.info
        snapshot = info.progress()
        name = short_name(info.stage)
        if snapshot is None:
            table.add_row(name, info.status, "-", "-", "-", "-", "-")
            continue
        table.add_row(
            name,
            info.status,
            f"{snapshot.processed}/{snapshot.total}",
            f"{snapshot.success_rate:.1f}%",
            str(snapshot.failed),
            f"{snapshot.throughput:.1f}/s",
            short_duration(snapshot.active_seconds),
        )
    return table


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def _shown(path: Path) -> str:
    """A path relative to the working directory when under it (shorter lines)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _left_out(info: StageInfo) -> str | None:
    """Why a stage has fewer items than its input has records (stage 3 saves the counts)."""
    metadata = info.state.metadata if info.state is not None else {}
    left_out, repeats = metadata.get("input_left_out"), metadata.get("input_repeats")
    if not isinstance(left_out, int) or not isinstance(repeats, int) or not left_out + repeats:
        return None
    pages = snapshot.total if (snapshot := info.progress()) is not None else 0
    validated = pages + left_out + repeats
    return (
        f"  {pages:,} page{'' if pages == 1 else 's'} of {validated:,} validated "
        f"URL{'' if validated == 1 else 's'}: {not_fetched_reasons(left_out, repeats, after='above')}"
    )


def summary_lines(outcomes: Sequence[StageOutcome], data_dir: Path, *, demo: bool) -> list[str]:
    """Where the results are, and what "Failed" counts: outputs, sidecars, logs, report."""
    lines: list[str] = []
    for outcome in outcomes:
        spec, snapshot = outcome.spec, outcome.info.progress()
        output = data_dir / spec.output
        if not output.is_file():
            continue
        lines.append(f"{spec.alias}: {_shown(output)}")
        not_pages = _left_out(outcome.info)
        if not_pages:
            lines.append(not_pages)
        failed = snapshot.failed if snapshot is not None else 0
        if not failed:
            continue
        sidecar = data_dir / spec.sidecar()
        in_sidecar = _count_lines(sidecar)
        http_errors = max(0, failed - in_sidecar)
        if in_sidecar:
            lines.append(f"  {in_sidecar} failed (retryable) in {_shown(sidecar)}")
        if http_errors:
            why = "the demo site's designed-in errors" if demo else "HTTP errors"
            lines.append(f'  {http_errors} failed: {why} ("ok": false in the output)')
    checkpoint_dir = data_dir / "checkpoints"
    lines.append(f"logs: {_shown(data_dir / 'logs')}/")
    lines.append(f"details: checkpoint-manager report --checkpoint-dir {_shown(checkpoint_dir)}")
    return lines
