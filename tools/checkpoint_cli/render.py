"""Rendering for the checkpoint CLI: plain-text tables, rich tables and the HTML report.

Everything here is a pure function of :class:`common.manager.StageInfo` values (and, for the HTML
chart, of points read from the history snapshots), so the CLI module owns all I/O.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from common.manager import StageInfo
from common.progress import ProgressSnapshot, format_duration
from common.status import CheckpointStatus

__all__ = [
    "LIST_HEADERS",
    "ChartPoint",
    "eta_text",
    "format_plain_table",
    "list_row",
    "progress_text",
    "render_html_report",
    "rich_stage_table",
    "status_label",
    "success_text",
]

LIST_HEADERS = ("Stage", "Status", "Progress", "Success Rate", "Updated")
WATCH_HEADERS = ("Stage", "Status", "Progress", "Success", "Rate", "ETA", "Updated")

_STATUS_STYLE = {
    "initialized": "dim",
    "running": "bold green",
    "recovering": "bold yellow",
    "paused": "cyan",
    "completed": "green",
    "failed": "bold red",
    "corrupt": "bold red",
}


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")


# Cells ---------------------------------------------------------------------------------------


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


def eta_text(info: StageInfo) -> str:
    """``done`` for a completed stage, ``-`` for a failed one, else the estimate."""
    snap = info.progress()
    if snap is None or info.state is None:
        return "-"
    if info.state.status is CheckpointStatus.COMPLETED:
        return "done"
    if info.state.status is CheckpointStatus.FAILED:
        return "-"
    return format_duration(snap.eta_seconds)


def _throughput_text(snap: ProgressSnapshot | None) -> str:
    if snap is None:
        return "-"
    rate = snap.throughput
    return f"{rate:.1f}/s" if rate >= 1 or rate == 0 else f"{rate:.2g}/s"


def updated_text(info: StageInfo, modified: float | None = None) -> str:
    """The checkpoint's ``updated_at`` (or the file's time for an unreadable one)."""
    if info.state is not None and info.state.updated_at:
        return info.state.updated_at
    return _iso(modified)


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


# Tables --------------------------------------------------------------------------------------


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


# HTML report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One history snapshot (or the current record) of a stage, for the chart."""

    time: float
    processed: int
    throughput: float
    label: str


_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --card:#ffffff; --bg:#f5f7fa;
  --blue:#2563eb; --amber:#d97706; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.meta { color: var(--muted); margin: 0 0 18px; }
.summary, .stage { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; margin-bottom: 16px; box-shadow: 0 1px 2px rgba(15,23,42,.05); }
.summary .counts { display:flex; gap: 28px; margin-top: 10px; color: var(--muted); }
.summary .counts b { color: var(--fg); font-size: 18px; margin-right: 4px; }
.stage header { display:flex; align-items:center; gap: 12px; margin-bottom: 10px; }
.badge { font-size: 12px; font-weight: 600; padding: 2px 9px; border-radius: 999px;
  text-transform: uppercase; letter-spacing: .04em; }
.s-initialized { background:#e4e7eb; color:#3e4c59; }
.s-running { background:#dcfce7; color:#166534; }
.s-recovering { background:#fef3c7; color:#92400e; }
.s-paused { background:#e0f2fe; color:#075985; }
.s-completed { background:#d1fae5; color:#065f46; }
.s-failed, .s-corrupt { background:#fee2e2; color:#991b1b; }
.live { font-size: 12px; color:#166534; font-weight:600; }
.bar { position: relative; height: 22px; background: #eef2f6; border-radius: 6px;
  overflow: hidden; }
.bar .fill { position:absolute; inset: 0 auto 0 0; background: linear-gradient(90deg,#3b82f6,#2563eb); }
.bar.done .fill { background: linear-gradient(90deg,#10b981,#059669); }
.bar.failed .fill { background: linear-gradient(90deg,#f87171,#dc2626); }
.bar span { position: relative; display:block; text-align:center; font-size: 12px;
  line-height: 22px; font-weight: 600; color: #0f172a; }
.figures { display:grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 8px 18px; margin: 12px 0 6px; }
.figures div { display:flex; flex-direction:column; }
.figures dt { color: var(--muted); font-size: 12px; }
.figures dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
.error { color:#991b1b; background:#fef2f2; border:1px solid #fecaca; border-radius: 6px;
  padding: 8px 10px; margin-top: 8px; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
  font-size: 12px; overflow-wrap: anywhere; }
figure { margin: 10px 0 0; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 2px; }
svg.chart { width: 100%; height: auto; display:block; }
svg.chart text { font: 11px system-ui, "DejaVu Sans", sans-serif; fill: #52606d; }
svg.chart .grid { stroke: #eef2f6; }
svg.chart .axis { stroke: #9aa5b1; }
svg.chart .processed { stroke: var(--blue); fill: none; stroke-width: 2.2; }
svg.chart .area { fill: rgba(37,99,235,.08); stroke: none; }
svg.chart .rate { stroke: var(--amber); fill: none; stroke-width: 1.8; stroke-dasharray: 5 4; }
svg.chart .total { stroke: #9aa5b1; stroke-dasharray: 2 3; }
svg.chart circle.p { fill: var(--blue); }
svg.chart circle.r { fill: var(--amber); }
.legend { display:flex; gap: 18px; font-size: 12px; color: var(--muted); }
.legend i { display:inline-block; width: 18px; height: 0; border-top: 2px solid; vertical-align: middle;
  margin-right: 6px; }
.empty { color: var(--muted); font-style: italic; }
"""

_W, _H = 960, 240
_ML, _MR, _MT, _MB = 64, 64, 16, 34


def _nice_step(value: float, *, integer: bool = False) -> float:
    """The smallest round step (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 x 10^k) >= ``value``.

    With ``integer``, only whole steps (for item counts: never 12.5 items).
    """
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for base in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        candidate = base * 10.0**exponent
        if integer and not candidate.is_integer():
            continue
        if candidate >= value * 0.999999:
            return candidate
    return 10.0 ** (exponent + 1)


def _fmt_num(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.3g}"


def _time_label(timestamp: float, span: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    if span >= 2 * 86400:
        return moment.strftime("%m-%d %H:%M")
    if span >= 120:
        return moment.strftime("%H:%M")
    return moment.strftime("%H:%M:%S")


def _chart_svg(points: Sequence[ChartPoint], total: int, stage: str) -> str:
    """Processed items (solid, left axis) and throughput (dashed, right axis) over time."""
    esc = html.escape
    pw, ph = _W - _ML - _MR, _H - _MT - _MB
    t0, t1 = points[0].time, points[-1].time
    span = t1 - t0
    # Four gridlines at round steps, with a little headroom above the highest point.
    steps = 4
    y_max = steps * _nice_step(
        1.04 * max([p.processed for p in points] + [total]) / steps, integer=True
    )
    r_max = steps * _nice_step(1.04 * max(p.throughput for p in points) / steps)

    def x(t: float) -> float:
        return _ML + (pw / 2 if span <= 0 else pw * (t - t0) / span)

    def y(v: float) -> float:
        return _MT + ph - ph * v / y_max

    def yr(v: float) -> float:
        return _MT + ph - ph * v / r_max

    out = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{esc(stage)}: processed items and throughput over time">'
    ]
    for i in range(steps + 1):
        value = y_max * i / steps
        yy = y(value)
        out.append(f'<line class="grid" x1="{_ML}" y1="{yy:.1f}" x2="{_ML + pw}" y2="{yy:.1f}"/>')
        out.append(
            f'<text x="{_ML - 8}" y="{yy + 4:.1f}" text-anchor="end">{_fmt_num(value)}</text>'
        )
        out.append(
            f'<text x="{_ML + pw + 8}" y="{yy + 4:.1f}">{_fmt_num(r_max * i / steps)}/s</text>'
        )
    out.append(
        f'<line class="axis" x1="{_ML}" y1="{_MT + ph}" x2="{_ML + pw}" y2="{_MT + ph}"/>'
        f'<line class="axis" x1="{_ML}" y1="{_MT}" x2="{_ML}" y2="{_MT + ph}"/>'
    )
    ticks = 1 if span <= 0 else 5
    for i in range(ticks):
        t = t0 if span <= 0 else t0 + span * i / (ticks - 1)
        anchor = "middle" if span <= 0 or 0 < i < ticks - 1 else ("start" if i == 0 else "end")
        out.append(
            f'<text x="{x(t):.1f}" y="{_H - 12}" text-anchor="{anchor}">'
            f"{esc(_time_label(t, span))}</text>"
        )
    if total > 0:
        out.append(
            f'<line class="total" x1="{_ML}" y1="{y(total):.1f}" x2="{_ML + pw}" '
            f'y2="{y(total):.1f}"/>'
            f'<text x="{_ML + 6}" y="{y(total) - 5:.1f}">total {total}</text>'
        )
    processed = " ".join(f"{x(p.time):.1f},{y(p.processed):.1f}" for p in points)
    rate = " ".join(f"{x(p.time):.1f},{yr(p.throughput):.1f}" for p in points)
    if len(points) > 1:
        out.append(
            f'<polygon class="area" points="{x(t0):.1f},{_MT + ph} {processed} '
            f'{x(t1):.1f},{_MT + ph}"/>'
        )
        out.append(f'<polyline class="processed" points="{processed}"/>')
        out.append(f'<polyline class="rate" points="{rate}"/>')
    for p in points:
        tip = esc(
            f"{p.label} at {_iso(p.time)}: {p.processed} processed, {p.throughput:.1f} items/s"
        )
        out.append(
            f'<circle class="r" cx="{x(p.time):.1f}" cy="{yr(p.throughput):.1f}" r="2.5">'
            f"<title>{tip}</title></circle>"
            f'<circle class="p" cx="{x(p.time):.1f}" cy="{y(p.processed):.1f}" r="3.5">'
            f"<title>{tip}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def _figure(label: str, value: str) -> str:
    return f"<div><dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd></div>"


def _stage_section(info: StageInfo, points: Sequence[ChartPoint]) -> str:
    esc = html.escape
    status = info.status
    head = (
        f'<header><h2>{esc(info.stage)}</h2><span class="badge s-{esc(status)}">{esc(status)}'
        f"</span>" + ('<span class="live">&#9679; live</span>' if info.live else "") + "</header>"
    )
    if info.state is None:
        return (
            f'<section class="stage">{head}<div class="error">{esc(info.error or "unreadable")}'
            f"</div></section>"
        )
    snap = info.progress()
    assert snap is not None
    completed = info.state.status is CheckpointStatus.COMPLETED
    failed = info.state.status is CheckpointStatus.FAILED
    percent = 100.0 if completed and snap.total <= 0 else snap.percent
    bar_class = "bar done" if completed else ("bar failed" if failed else "bar")
    bar = (
        f'<div class="{bar_class}"><div class="fill" style="width:{percent:.2f}%"></div>'
        f"<span>{esc(progress_text(info))}</span></div>"
    )
    figures = [
        _figure("Success rate", success_text(snap)),
        _figure("Throughput", f"{snap.throughput:.1f} items/sec"),
        _figure("ETA", eta_text(info)),
        _figure("Active time", format_duration(snap.active_seconds)),
        _figure("Successful", str(snap.successful)),
        _figure("Failed", str(snap.failed)),
        _figure("Skipped", str(snap.skipped)),
        _figure("Updated (UTC)", info.state.updated_at or "-"),
    ]
    parts = [f'<section class="stage">{head}{bar}<dl class="figures">{"".join(figures)}</dl>']
    if info.state.error_message:
        parts.append(
            f'<div class="error">Last error ({info.state.error_count} in all): '
            f"{esc(info.state.error_message)}</div>"
        )
    if points:
        parts.append(
            "<figure>"
            '<div class="legend"><span><i style="border-color:var(--blue)"></i>processed items '
            '(left axis)</span><span><i style="border-color:var(--amber);border-top-style:dashed">'
            "</i>average throughput, items/s (right axis)</span></div>"
            + _chart_svg(points, snap.total, info.stage)
            + f"<figcaption>{len(points)} point{'s' if len(points) != 1 else ''} from the "
            "history snapshots (start, pause, completion, manual changes) and the current "
            "checkpoint; times in UTC.</figcaption></figure>"
        )
    else:
        parts.append('<p class="empty">No history snapshots yet.</p>')
    parts.append("</section>")
    return "".join(parts)


def render_html_report(
    infos: Sequence[StageInfo],
    series: dict[str, list[ChartPoint]],
    *,
    location: str,
    overall_percent: float,
    generated_at: float | None = None,
) -> str:
    """A self-contained page: inline CSS and SVG, no scripts, no external resources."""
    esc = html.escape
    now = time.time() if generated_at is None else generated_at
    active = sum(
        1
        for i in infos
        if i.state is not None
        and i.state.status in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING)
    )
    completed = sum(
        1 for i in infos if i.state is not None and i.state.status is CheckpointStatus.COMPLETED
    )
    failed = sum(
        1 for i in infos if i.state is not None and i.state.status is CheckpointStatus.FAILED
    )
    corrupt = sum(1 for i in infos if i.state is None)
    counts = [
        ("Stages", len(infos)),
        ("Active", active),
        ("Completed", completed),
        ("Failed", failed),
    ]
    if corrupt:
        counts.append(("Corrupt", corrupt))
    summary = (
        '<section class="summary"><strong>Overall pipeline progress</strong>'
        f'<div class="bar{" done" if infos and completed == len(infos) else ""}">'
        f'<div class="fill" style="width:{overall_percent:.2f}%"></div>'
        f"<span>{overall_percent:.1f}%</span></div>"
        '<div class="counts">'
        + "".join(f"<span><b>{n}</b>{esc(label)}</span>" for label, n in counts)
        + "</div></section>"
    )
    if infos:
        body = "".join(_stage_section(info, series.get(info.stage, [])) for info in infos)
    else:
        body = f'<p class="empty">No checkpoints in {esc(location)}.</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Pipeline Progress Report</title>"
        f"<style>{_CSS}</style></head><body><main>"
        "<h1>Pipeline Progress Report</h1>"
        f'<p class="meta">Checkpoints in <code>{esc(location)}</code> &middot; generated '
        f"{esc(_iso(now))} UTC</p>" + summary + body + "</main></body></html>\n"
    )
