"""``history STAGE`` and ``restore STAGE SNAPSHOT``."""

from __future__ import annotations

import argparse
from typing import Any

from common.errors import CheckpointError
from common.manager import UnifiedCheckpointManager
from common.state import parse_checkpoint
from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import (
    EXIT_OK,
    iso,
    open_manager,
    out,
    print_json,
    require_stage,
)


def _history_rows(manager: UnifiedCheckpointManager, stage: str) -> list[dict[str, Any]]:
    rows = []
    for entry in manager.store.list_history(stage):
        row: dict[str, Any] = {
            "id": entry.snapshot_id,
            "time": iso(entry.created),  # replaced by the record's own time when readable
            "reason": entry.reason,
            "status": None,
            "processed": None,
            "total": None,
        }
        try:
            record = manager.store.load_history(stage, entry.snapshot_id)
            state, _ = parse_checkpoint(record, path=entry.path, stage=stage)
        except CheckpointError as exc:
            row["status"] = "unreadable"
            row["error"] = str(exc)
        else:
            row.update(
                time=state.updated_at or row["time"],
                status=state.status.value,
                processed=state.progress.processed_items,
                total=state.progress.total_items,
            )
        rows.append(row)
    return rows


def cmd_history(args: argparse.Namespace) -> int:
    """``history STAGE``: the stage's snapshots, oldest first."""
    manager = open_manager(args)
    stage = require_stage(manager, args.stage, history=True)
    rows = _history_rows(manager, stage)
    if args.json:
        print_json({"stage": stage, "snapshots": rows})
        return EXIT_OK
    if not rows:
        out(f"no history snapshots for {stage}")
        return EXIT_OK
    table = [
        [
            r["id"],
            r["time"] or "-",
            r["reason"],
            r["status"] or "-",
            "-" if r["processed"] is None else f"{r['processed']}/{r['total']}",
        ]
        for r in rows
    ]
    out(
        render.format_plain_table(
            ["Snapshot", "Time (UTC)", "Reason", "Status", "Processed"], table
        )
    )
    out()
    out(f"restore one with: restore {stage} SNAPSHOT")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    """``restore STAGE SNAPSHOT``: the snapshot becomes the checkpoint; the current one is kept."""
    manager = open_manager(args)
    stage = require_stage(manager, args.stage, history=True)
    try:
        result = manager.restore(stage, args.snapshot)
    finally:
        manager.close()
    p = result.state.progress
    out(
        f"restored {stage} from snapshot {args.snapshot} ({result.state.status.value}, "
        f"{p.processed_items}/{p.total_items} processed)"
    )
    if result.saved_as:
        out(f"the previous checkpoint was saved to history as {result.saved_as}")
    return EXIT_OK
