"""``list``: one line per stage."""

from __future__ import annotations

import argparse
import sys

from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import (
    EXIT_OK,
    info_json,
    is_tty,
    modified_times,
    no_checkpoints_line,
    open_manager,
    out,
    print_json,
    read_stages,
    say_unreadable,
)


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: one line per stage; corrupt stages are listed with their error, and each
    checkpoint this process may not read gets an ``error:`` line (exit 1)."""
    manager = open_manager(args)
    infos, unreadable = read_stages(manager)
    if args.json:
        print_json(
            {
                "checkpoint_dir": str(manager.checkpoint_dir),
                "exists": manager.checkpoint_dir.is_dir(),
                "stages": [info_json(info) for info in infos],
            }
        )
        return say_unreadable(unreadable)
    if not infos and not unreadable:
        out(no_checkpoints_line(manager))
        return EXIT_OK
    modified = modified_times(manager, infos)
    if is_tty(sys.stdout):
        from rich.console import Console

        Console().print(render.rich_stage_table(infos, modified))
        return say_unreadable(unreadable)
    rows = [render.list_row(info, mtime) for info, mtime in zip(infos, modified, strict=True)]
    out(render.format_plain_table(render.LIST_HEADERS, rows))
    notes = [f"{info.stage}: {info.error}" for info in infos if info.error]
    notes += [
        f"{info.stage}: main file unreadable, read from its backup"
        for info in infos
        if info.restored_from_backup
    ]
    if notes:
        out()
        for note in notes:
            out(note)
    return say_unreadable(unreadable)
