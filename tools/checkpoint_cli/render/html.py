"""The self-contained HTML report: inline CSS and SVG, no scripts, no external resources."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from common.manager import StageInfo
from common.progress import format_duration
from common.status import CheckpointStatus
from tools.checkpoint_cli.render.chart import ChartPoint, chart_svg
from tools.checkpoint_cli.render.text import eta_text, iso_text, progress_text, success_text

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
            + chart_svg(points, snap.total, info.stage)
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
        f"{esc(iso_text(now))} UTC</p>" + summary + body + "</main></body></html>\n"
    )
