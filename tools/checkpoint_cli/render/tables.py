"""Rich tables for a terminal: ``list`` and ``watch`` with status colours and bars."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from common.manager import StageInfo
from common.status import CheckpointStatus
from tools.checkpoint_cli.render.text import LIST_HEADERS, WATCH_HEADERS, list_row, watch_row

_STATUS_STYLE = {
    "initialized": "dim",
    "running": "bold green",
    "recovering": "bold yellow",
    "paused": "cyan",
    "completed": "green",
    "failed": "bold red",
    "corrupt": "bold red",
}


def _bar(info: StageInfo) -> RenderableType:
    snap = info.progress()
    if snap is None or info.state is None:
        return ""
    if info.state.status is CheckpointStatus.COMPLETED:
        total = completed = max(snap.total, snap.processed, 1)
    elif snap.total <= 0:
        return Text("total unknown", style="dim")
    else:
        total, completed = snap.total, min(snap.processed, snap.total)
    return ProgressBar(
        total=total,
        completed=completed,
        width=12,
        complete_style="blue",
        finished_style="green",
    )


def rich_stage_table(
    infos: Sequence[StageInfo],
    modified: Sequence[float | None],
    *,
    title: str | None = None,
    watch: bool = False,
) -> RenderableType:
    """The ``list`` (or, with ``watch``, the ``watch``) table for a terminal, with a bar column."""
    table = Table(title=title, header_style="bold", expand=False)
    headers = WATCH_HEADERS if watch else LIST_HEADERS
    rows = [
        watch_row(i, m) if watch else list_row(i, m) for i, m in zip(infos, modified, strict=True)
    ]
    for n, header in enumerate(headers):
        table.add_column(
            header,
            justify="right" if header in ("Success Rate", "Success", "Rate", "ETA") else "left",
            no_wrap=True,
            # Never squeeze these: a cut stage name or status is worse than a cropped edge.
            min_width=max([len(header), *(len(r[n]) for r in rows)]),
        )
        if watch and header == "Progress":
            table.add_column("", width=12, no_wrap=True)
    errors: list[Text] = []
    for info, raw in zip(infos, rows, strict=True):
        cells: list[RenderableType] = []
        for header, cell in zip(headers, raw, strict=True):
            if header == "Status":
                cells.append(Text(cell, style=_STATUS_STYLE.get(info.status, "")))
            else:
                cells.append(cell)
            if watch and header == "Progress":
                cells.append(_bar(info))
        table.add_row(*cells)
        if info.error:
            errors.append(Text(f"{info.stage}: {info.error}", style="red"))
    if not errors:
        return table
    return Group(table, *errors)
