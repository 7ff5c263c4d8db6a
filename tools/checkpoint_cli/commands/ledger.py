"""``ledger STAGE``: the per-item ledger of the SQLite store (seed 004)."""

from __future__ import annotations

import argparse
from typing import Any

from common.ledger import Ledger
from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import (
    EXIT_OK,
    CliError,
    iso,
    open_manager,
    out,
    print_json,
    require_stage,
)


def _ledger_data(ledger: Ledger, limit: int, include_failed: bool) -> dict[str, Any]:
    stats = ledger.statistics()
    remaining = ledger.remaining(limit, include_failed=include_failed)
    return {
        "stage": ledger.stage,
        "remaining": ledger.count_remaining(include_failed=include_failed),
        "include_failed": include_failed,
        "remaining_sample": remaining,
        "statistics": stats.to_dict(),
    }


def _ledger_text(data: dict[str, Any]) -> str:
    stats = data["statistics"]
    what = "pending or failed" if data["include_failed"] else "pending"
    lines = [
        f"Ledger of {data['stage']}: {stats['total']} items",
        f"  Remaining ({what}): {data['remaining']}",
        "  By status: " + ", ".join(f"{k} {v}" for k, v in stats["by_status"].items()),
        f"  First recorded: {iso(stats['first_at']) or '-'} | Last: {iso(stats['last_at']) or '-'}",
    ]
    if stats["by_worker"]:
        rows = [
            [worker, *(str(counts.get(s, 0)) for s in ("done", "failed", "skipped"))]
            for worker, counts in stats["by_worker"].items()
        ]
        lines += ["", render.format_plain_table(["Worker", "Done", "Failed", "Skipped"], rows)]
    if stats["attempts"]:
        lines += ["", "Attempts per finished item:"]
        lines += [f"  {n}: {count}" for n, count in stats["attempts"].items()]
    if stats["errors"]:
        lines += ["", "Errors of failed items (most frequent first):"]
        lines += [f"  {count:>6}  {error}" for error, count in list(stats["errors"].items())[:20]]
    if data["remaining_sample"]:
        shown = len(data["remaining_sample"])
        lines += ["", f"Remaining items (first {shown}):"]
        lines += [f"  {key}" for key in data["remaining_sample"]]
    return "\n".join(lines)


def cmd_ledger(args: argparse.Namespace) -> int:
    """``ledger STAGE``: remaining work and statistics from the per-item ledger (seed 004)."""
    manager = open_manager(args)
    stage = require_stage(manager, args.stage)
    if not Ledger.available(manager.store):
        raise CliError(
            f"stage {stage!r}: the checkpoints in {manager.store.location} are JSON files, which "
            f"keep no per-item ledger; run the stage with --store sqlite"
        )
    data = _ledger_data(Ledger(manager.store, stage), args.limit, args.include_failed)
    if args.json:
        print_json(data)
    else:
        out(_ledger_text(data))
    return EXIT_OK
