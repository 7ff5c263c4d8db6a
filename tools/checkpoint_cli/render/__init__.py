"""Rendering for the checkpoint CLI: pure functions of ``StageInfo`` values; commands do the I/O.

``text`` (plain cells and tables), ``tables`` (rich, for a terminal), ``chart`` (SVG) and
``html`` (the self-contained report).
"""

from __future__ import annotations

from tools.checkpoint_cli.render.chart import ChartPoint
from tools.checkpoint_cli.render.html import render_html_report
from tools.checkpoint_cli.render.tables import rich_stage_table
from tools.checkpoint_cli.render.text import (
    LIST_HEADERS,
    WATCH_HEADERS,
    eta_label,
    eta_seconds_of,
    eta_text,
    format_plain_table,
    iso_text,
    list_row,
    progress_text,
    status_label,
    success_text,
    updated_text,
    watch_row,
)

__all__ = [
    "LIST_HEADERS",
    "WATCH_HEADERS",
    "ChartPoint",
    "eta_label",
    "eta_seconds_of",
    "eta_text",
    "format_plain_table",
    "iso_text",
    "list_row",
    "progress_text",
    "render_html_report",
    "rich_stage_table",
    "status_label",
    "success_text",
    "updated_text",
    "watch_row",
]
