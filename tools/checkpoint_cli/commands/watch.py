"""``watch``: a live, refreshing table until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from common.manager import UnifiedCheckpointManager
from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import (
    EXIT_ERROR,
    EXIT_OK,
    Unreadable,
    is_tty,
    iso,
    modified_times,
    no_checkpoints_line,
    open_manager,
    out,
    read_stages,
)


def _watch_renderable(manager: UnifiedCheckpointManager, unreadable: list[Unreadable]) -> Any:
    from rich.console import Group
    from rich.text import Text

    infos, unreadable[:] = read_stages(manager)
    stamp = iso(time.time())
    problems = [Text(item.line, style="red") for item in unreadable]
    if not infos:
        return Group(Text(f"{no_checkpoints_line(manager)} (as of {stamp} UTC)"), *problems)
    overall = manager.overall_progress(infos)
    title = f"Checkpoints in {manager.checkpoint_dir}"
    footer = Text(
        f"Overall pipeline progress: {overall:.1f}%  ·  {stamp} UTC  ·  Ctrl-C to stop",
        style="dim",
    )
    return Group(
        render.rich_stage_table(infos, modified_times(manager, infos), title=title, watch=True),
        *problems,
        footer,
    )


def _watch_plain(manager: UnifiedCheckpointManager, unreadable: list[Unreadable]) -> str:
    infos, unreadable[:] = read_stages(manager)
    stamp = iso(time.time())
    problems = [item.line for item in unreadable]
    if not infos:
        return "\n".join([f"{no_checkpoints_line(manager)} (as of {stamp} UTC)", *problems])
    rows = [
        render.watch_row(info, mtime)
        for info, mtime in zip(infos, modified_times(manager, infos), strict=True)
    ]
    lines = [render.format_plain_table(render.WATCH_HEADERS, rows)]
    lines += [f"{info.stage}: {info.error}" for info in infos if info.error]
    lines += problems
    lines.append(f"Overall pipeline progress: {manager.overall_progress(infos):.1f}% ({stamp} UTC)")
    return "\n".join(lines)


def cmd_watch(args: argparse.Namespace) -> int:
    """``watch``: re-read every stage each ``--interval`` seconds until Ctrl-C.

    A checkpoint this process may not read is an ``error:`` line under the table (each
    refresh); ``--once`` then exits 1.
    """
    manager = open_manager(args)
    tty = is_tty(sys.stdout)
    unreadable: list[Unreadable] = []
    try:
        if args.once or not tty:
            while True:
                if tty:
                    from rich.console import Console

                    Console().print(_watch_renderable(manager, unreadable))
                else:
                    out(_watch_plain(manager, unreadable))
                    sys.stdout.flush()
                if args.once:
                    return EXIT_ERROR if unreadable else EXIT_OK
                time.sleep(args.interval)
                out()
        from rich.live import Live

        first = _watch_renderable(manager, unreadable)
        with Live(first, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(_watch_renderable(manager, unreadable), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK
