"""``report`` (text, JSON, HTML with charts) and ``export`` (checkpoints as one JSON document)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from common.errors import CheckpointError
from common.io.atomic import atomic_write_bytes
from common.manager import StageInfo, UnifiedCheckpointManager
from common.outputs import refuse_replacing
from common.state import CheckpointState, parse_checkpoint
from common.status import CheckpointStatus
from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import (
    EXIT_OK,
    CliError,
    cannot_write,
    info_json,
    iso,
    log,
    no_checkpoints_line,
    open_manager,
    out,
    output_file,
    parse_iso,
    print_json,
    read_stages,
    say_unreadable,
)


def history_points(manager: UnifiedCheckpointManager, info: StageInfo) -> list[render.ChartPoint]:
    """Processed count and average throughput at each readable snapshot, plus the current one."""
    points: list[render.ChartPoint] = []

    def point(state: CheckpointState, fallback: float, label: str) -> render.ChartPoint:
        p = state.progress
        moments = [t for t in (parse_iso(state.updated_at), p.last_update_time) if t is not None]
        when = max(moments) if moments else fallback
        rate = p.processed_items / p.active_seconds if p.active_seconds > 0 else 0.0
        return render.ChartPoint(when, p.processed_items, rate, label)

    for entry in manager.store.list_history(info.stage):
        try:
            record = manager.store.load_history(info.stage, entry.snapshot_id)
            state, _ = parse_checkpoint(record, path=entry.path, stage=info.stage)
        except CheckpointError as exc:
            log.info("skipping snapshot %s of %s: %s", entry.snapshot_id, info.stage, exc)
            continue
        points.append(point(state, entry.created, entry.reason or entry.snapshot_id))
    if info.state is not None:
        modified = manager.store.modified_time(info.stage) or time.time()
        points.append(point(info.state, modified, "current"))
    points.sort(key=lambda p: p.time)
    unique: list[render.ChartPoint] = []
    for p in points:
        if unique and unique[-1].time == p.time and unique[-1].processed == p.processed:
            unique[-1] = p
        else:
            unique.append(p)
    return unique


def _report_json(manager: UnifiedCheckpointManager, infos: Sequence[StageInfo]) -> dict[str, Any]:
    statuses = [info.state.status for info in infos if info.state is not None]
    return {
        "checkpoint_dir": str(manager.checkpoint_dir),
        "generated_at": iso(time.time()),
        "overall_progress": round(manager.overall_progress(infos), 3),
        "active": sum(
            s in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING) for s in statuses
        ),
        "completed": sum(s is CheckpointStatus.COMPLETED for s in statuses),
        "failed": sum(s is CheckpointStatus.FAILED for s in statuses),
        "corrupt": sum(info.state is None for info in infos),
        "stages": [
            {**info_json(info), "eta": render.eta_text(info) if info.state else None}
            for info in infos
        ],
    }


def cmd_report(args: argparse.Namespace) -> int:
    """``report``: seed 003's progress report as text, JSON or a self-contained HTML page."""
    target = output_file("--html", args.html) if args.html is not None else None
    manager = open_manager(args)
    if target is not None:
        refuse_replacing(manager.store, target)
    infos, unreadable = read_stages(manager)  # each unreadable file: one error line, exit 1
    if target is not None:
        series = {info.stage: history_points(manager, info) for info in infos}
        page = render.render_html_report(
            infos,
            series,
            location=str(manager.checkpoint_dir),
            overall_percent=manager.overall_progress(infos),
        )
        try:
            atomic_write_bytes(
                target, page.encode("utf-8"), temp_path=target.with_name(f".{target.name}.tmp")
            )
        except OSError as exc:
            raise cannot_write("--html", target, exc) from None
        note = f"wrote HTML report ({len(infos)} stage{'s' if len(infos) != 1 else ''}) to {target}"
        if args.json:
            print(note, file=sys.stderr)
        else:
            out(note)
            return say_unreadable(unreadable)
    if args.json:
        print_json(_report_json(manager, infos))
        return say_unreadable(unreadable)
    if not infos and not unreadable:
        out(no_checkpoints_line(manager))
        return EXIT_OK
    out(manager.report(infos))
    return say_unreadable(unreadable)


def cmd_export(args: argparse.Namespace) -> int:
    """``export --output F``: every stage as one JSON document, written atomically (F's
    directory must exist; a stage's output or checkpoint file is refused by
    :meth:`~common.manager.UnifiedCheckpointManager.export`)."""
    target = output_file("--output", args.output)
    manager = open_manager(args)
    if not manager.stages():
        # An export of nothing is most often a mistyped --checkpoint-dir: say so, write nothing.
        raise CliError(f"{no_checkpoints_line(manager)}; nothing was exported")
    try:
        document = manager.export(target)
    except OSError as exc:
        raise cannot_write("--output", target, exc) from None
    count = len(document["stages"])
    out(f"exported {count} stage{'s' if count != 1 else ''} to {target}")
    return EXIT_OK
