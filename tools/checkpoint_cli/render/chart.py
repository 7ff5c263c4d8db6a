"""The SVG chart of the HTML report: processed items and throughput over time (no scripts)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tools.checkpoint_cli.render.text import iso_text

_W, _H = 960, 240
_ML, _MR, _MT, _MB = 64, 64, 16, 34


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One history snapshot (or the current record) of a stage, for the chart."""

    time: float
    processed: int
    throughput: float
    label: str


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


def chart_svg(points: Sequence[ChartPoint], total: int, stage: str) -> str:
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
            f"{p.label} at {iso_text(p.time)}: {p.processed} processed, {p.throughput:.1f} items/s"
        )
        out.append(
            f'<circle class="r" cx="{x(p.time):.1f}" cy="{yr(p.throughput):.1f}" r="2.5">'
            f"<title>{tip}</title></circle>"
            f'<circle class="p" cx="{x(p.time):.1f}" cy="{y(p.processed):.1f}" r="3.5">'
            f"<title>{tip}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)
