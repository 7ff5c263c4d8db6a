"""Inspect and manage the checkpoints of a pipeline (seed 003's checkpoint manager CLI).

Usage::

    python tools/checkpoint_manager_cli.py [--checkpoint-dir DIR] [--store json|sqlite]
                                           [--verbose] COMMAND ...
    python -m tools.checkpoint_cli.app ...      # or the installed ``checkpoint-manager``

Commands:

    list [--json]                     every stage: status, progress n/N (x%), success rate, updated
    show STAGE [--json]               one stage in detail: status and timestamps, progress,
                                      performance, resume point, errors, input file validation
    report [--json] [--html FILE]     seed 003's "Pipeline Progress Report"; --html writes a
                                      self-contained page with progress bars and history charts
    export --output FILE              every stage as one JSON document
    reset STAGE|all [--force]         forget a stage's progress (asks on a terminal; refuses
                                      without --force when there is none, or when the stage is
                                      held by a live process)
    cleanup --days N [--keep K]       remove history snapshots and finished checkpoints older
                                      than N days (keeping the newest K snapshots per stage)
    set STAGE INDEX [--part P]        move the resume point by hand (recorded in the history)
    history STAGE                     the stage's timestamped snapshots
    restore STAGE SNAPSHOT [--force]  make a snapshot the current checkpoint again
    watch [--interval S] [--once]     a live, refreshing table until Ctrl-C
    ledger STAGE [--json] [--limit N] [--include-failed]
                                      the per-item ledger (SQLite store): remaining work and
                                      statistics per status, worker, attempts and error

``--checkpoint-dir`` (default ``data/checkpoints``) and ``--store`` (default: ``sqlite`` when
the directory holds ``checkpoints.sqlite3``, else ``json``) may come before or after the command.
Reading commands (list, show, report, export, history, watch) never take a stage's lock and never
write a checkpoint. Tables use rich on a terminal and plain aligned text otherwise.

Exit codes:

    0   success (also: an empty or missing checkpoint directory, Ctrl-C in ``watch``)
    1   error: one line on stderr starting with ``error:`` naming the stage or file
    2   usage error (bad arguments)
    130 interrupted by Ctrl-C
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run by path: make ``common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from common.checkpoint import EnhancedCheckpoint
from common.errors import (
    CheckpointError,
    CheckpointLockedError,
    StageNotFoundError,
)
from common.io.atomic import atomic_write_bytes
from common.ledger import Ledger
from common.manager import MAX_INDEX, StageInfo, UnifiedCheckpointManager
from common.progress import format_duration
from common.state import CheckpointState, parse_checkpoint
from common.status import CheckpointStatus
from common.stores import detect_store, open_store
from common.stores.base import validate_stage_name
from common.stores.factory import store_argument
from tools._argtypes import non_negative_float, non_negative_int, positive_float
from tools.checkpoint_cli import render

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_DIR = "data/checkpoints"

EPILOG = """\
exit codes:
  0    success (an empty or missing checkpoint directory is not an error)
  1    error: one line on stderr starting with 'error:' naming the stage or file
  2    usage error
  130  interrupted (Ctrl-C), except in 'watch', which exits 0

--checkpoint-dir and --store may be given before or after the command.
"""

log = logging.getLogger("checkpoint_manager_cli")


class CliError(Exception):
    """An error the CLI reports itself (one line, exit 1)."""


# Output helpers ------------------------------------------------------------------------------


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _print_json(data: Any) -> None:
    _out(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _error_line(exc: BaseException) -> str:
    """One line: ``error: <message>``, naming the stage when the message does not."""
    message = " ".join(str(exc).split())
    stage = getattr(exc, "stage", None)
    if isinstance(exc, CheckpointError) and stage and stage not in message:
        message = f"stage {stage!r}: {message}"
    return f"error: {message}"


def _os_error_line(exc: OSError) -> str:
    what = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"error: {what}: {reason}" if what else f"error: {reason}"


# Logging -------------------------------------------------------------------------------------


class _CliLogFilter(logging.Filter):
    """Say each distinct engine message once, and drop load failures the CLI reports itself."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("common.stores") and str(record.msg).startswith(
            "Failed to load checkpoint"
        ):
            return False  # shown as the stage's `corrupt` status or as the command's error
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False  # `watch` re-reads every few seconds
        self._seen.add(key)
        return True


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter())
    handler.addFilter(_CliLogFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


@contextlib.contextmanager
def _quiet_engine() -> Iterator[None]:
    """Silence the engine's resume messages while the CLI opens a checkpoint it will not run.

    Opening a crashed (``running``) stage logs "Detected incomplete checkpoint ... Resuming",
    which is what a pipeline run should say, not ``show`` or ``reset``.
    """
    engine = logging.getLogger("common.checkpoint")
    previous = engine.level
    engine.setLevel(logging.ERROR)
    try:
        yield
    finally:
        engine.setLevel(previous)


# Stage lookups -------------------------------------------------------------------------------


def _manager(args: argparse.Namespace) -> UnifiedCheckpointManager:
    directory = Path(args.checkpoint_dir)
    if directory.exists() and not directory.is_dir():
        raise CliError(f"checkpoint directory {directory} is not a directory")
    store = open_store(args.store or detect_store(directory), directory)
    args.cleanup.callback(store.close)
    return UnifiedCheckpointManager(directory, store=store)


def _unknown_stage(manager: UnifiedCheckpointManager, stage: str) -> StageNotFoundError:
    known = tuple(manager.stages())
    listing = ", ".join(known) if known else "none"
    where = manager.store.location
    if not manager.checkpoint_dir.exists():
        where += ", which does not exist"
    return StageNotFoundError(
        f"no checkpoint for stage {stage!r} in {where} (known stages: {listing})",
        stage=stage,
        path=manager.store.describe(stage),
        known=known,
    )


def _require_stage(manager: UnifiedCheckpointManager, stage: str, *, history: bool = False) -> str:
    """The stage name if it has a checkpoint (or, with ``history``, any snapshot)."""
    validate_stage_name(stage)
    if stage in manager.stages():
        return stage
    if history and manager.store.list_history(stage):
        return stage
    raise _unknown_stage(manager, stage)


def _no_checkpoints_line(manager: UnifiedCheckpointManager) -> str:
    if not manager.checkpoint_dir.exists():
        return f"no checkpoints in {manager.checkpoint_dir} (the directory does not exist)"
    return f"no checkpoints in {manager.checkpoint_dir}"


def _modified(manager: UnifiedCheckpointManager, infos: Sequence[StageInfo]) -> list[float | None]:
    return [manager.store.modified_time(info.stage) for info in infos]


# JSON shapes ---------------------------------------------------------------------------------


def _figures(info: StageInfo) -> dict[str, Any] | None:
    snap = info.progress()
    if snap is None:
        return None
    return {
        "total_items": snap.total,
        "processed_items": snap.processed,
        "successful_items": snap.successful,
        "failed_items": snap.failed,
        "skipped_items": snap.skipped,
        "percent": round(snap.percent, 3),
        "success_rate": round(snap.success_rate, 3),
        "throughput": round(snap.throughput, 3),
        "eta_seconds": snap.eta_seconds,
        "active_seconds": round(snap.active_seconds, 3),
    }


def _info_json(info: StageInfo) -> dict[str, Any]:
    return {
        "stage": info.stage,
        "status": info.status,
        "live": info.live,
        "location": info.location,
        "updated_at": info.state.updated_at if info.state is not None else None,
        "progress": _figures(info),
        "restored_from_backup": info.restored_from_backup,
        "error": info.error,
    }


# Commands ------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: one line per stage; corrupt stages are listed with their error."""
    manager = _manager(args)
    infos = manager.list_checkpoints()
    if args.json:
        _print_json(
            {
                "checkpoint_dir": str(manager.checkpoint_dir),
                "exists": manager.checkpoint_dir.is_dir(),
                "stages": [_info_json(info) for info in infos],
            }
        )
        return EXIT_OK
    if not infos:
        _out(_no_checkpoints_line(manager))
        return EXIT_OK
    modified = _modified(manager, infos)
    if _is_tty(sys.stdout):
        from rich.console import Console

        Console().print(render.rich_stage_table(infos, modified))
        return EXIT_OK
    rows = [render.list_row(info, mtime) for info, mtime in zip(infos, modified, strict=True)]
    _out(render.format_plain_table(render.LIST_HEADERS, rows))
    notes = [f"{info.stage}: {info.error}" for info in infos if info.error]
    notes += [
        f"{info.stage}: main file unreadable, read from its backup"
        for info in infos
        if info.restored_from_backup
    ]
    if notes:
        _out()
        for note in notes:
            _out(note)
    return EXIT_OK


def _input_validation(manager: UnifiedCheckpointManager, state: CheckpointState) -> dict[str, Any]:
    result: dict[str, Any] = {
        "input_file": state.input_file,
        "recorded_hash": state.input_file_hash,
        "recorded_size": state.input_file_size,
        "checked": False,
        "unchanged": None,
        "reason": "no input file recorded",
    }
    if not state.input_file:
        return result
    # A read-only checkpoint: constructing it loads without locking; no mutating call follows.
    with _quiet_engine():
        checkpoint = EnhancedCheckpoint(state.stage, store=manager.store)
    try:
        ok, reason = checkpoint.validate_input_file(state.input_file)
    finally:
        checkpoint.close()
    result.update(checked=bool(state.input_file_hash), unchanged=ok, reason=reason)
    if not state.input_file_hash:
        result["unchanged"] = None
    return result


def _show_data(manager: UnifiedCheckpointManager, info: StageInfo) -> dict[str, Any]:
    state = info.state
    assert state is not None
    snap = info.progress()
    assert snap is not None
    progress = state.progress
    now = time.time()
    status = state.status
    # Wall clock from the first start: up to now while a process runs it, else to its last update.
    end = now if info.live else (progress.last_update_time or _parse_iso(state.updated_at))
    elapsed = None
    if progress.start_time is not None and end is not None:
        elapsed = max(0.0, end - progress.start_time)
    window = state.completion
    return {
        "stage": info.stage,
        "file": info.location,
        "status": status.value,
        "live": info.live,
        "restored_from_backup": info.restored_from_backup,
        "timestamps": {
            "created_at": state.created_at or None,
            "updated_at": state.updated_at or None,
            "start_time": _iso(progress.start_time),
            "last_update_time": _iso(progress.last_update_time),
        },
        "runs": state.run_count,
        "recoveries": state.recoveries,
        "progress": {
            "total_items": snap.total,
            "processed_items": snap.processed,
            "successful_items": snap.successful,
            "failed_items": snap.failed,
            "skipped_items": snap.skipped,
            "percent": round(snap.percent, 3),
        },
        "performance": {
            "success_rate": round(snap.success_rate, 3),
            "throughput": round(snap.throughput, 3),
            "eta_seconds": (
                None
                if status in (CheckpointStatus.COMPLETED, CheckpointStatus.FAILED)
                else snap.eta_seconds
            ),
            "elapsed_seconds": None if elapsed is None else round(elapsed, 3),
            "active_seconds": round(snap.active_seconds, 3),
        },
        "resume_point": {
            "watermark": window.watermark,
            "finished_above_watermark": window.in_flight_gap,
            "finished_above_sample": window.done_above()[:20],
            "prefix_item": window.prefix_item,
            "last_processed_index": state.last_processed_index,
            "last_processed_item": state.last_processed_item,
            "batch_id": state.batch_id,
            "keys_done": state.keys_done,
            "parts": {
                name: {
                    "total": part.total,
                    "finished": part.finished,
                    "watermark": part.window.watermark,
                    "finished_above_watermark": part.window.in_flight_gap,
                }
                for name, part in state.parts.items()
            },
        },
        "errors": {
            "error_count": state.error_count,
            "error_message": state.error_message,
            "last_error_time": state.last_error_time,
            "recent_errors": [{"time": e.time, "message": e.message} for e in state.recent_errors],
        },
        "input_validation": _input_validation(manager, state),
        "output_file": state.output_file,
        "config_hash": state.config_hash,
        "metadata": state.metadata,
        "history_snapshots": len(manager.store.list_history(info.stage)),
    }


def _show_text(data: dict[str, Any]) -> str:
    def val(value: Any) -> str:
        return "-" if value is None or value == "" else str(value)

    ts, pr, perf = data["timestamps"], data["progress"], data["performance"]
    rp, err, inp = data["resume_point"], data["errors"], data["input_validation"]
    status = data["status"] + (" (live: another process is writing it)" if data["live"] else "")
    total = pr["total_items"]
    lines = [
        f"Stage: {data['stage']}",
        f"File: {data['file']}",
        f"Status: {status}",
        f"  Created: {val(ts['created_at'])}",
        f"  Updated: {val(ts['updated_at'])}",
        f"  Started: {val(ts['start_time'])}",
        f"  Last item finished: {val(ts['last_update_time'])}",
        f"  Runs: {data['runs']} | Recoveries after a crash: {data['recoveries']}",
    ]
    if data["restored_from_backup"]:
        lines.append("  Note: the main file is unreadable; this was read from its backup")
    lines += [
        "",
        "Progress",
        f"  Processed: {pr['processed_items']}/{total if total else '?'}"
        + (f" ({pr['percent']:.1f}%)" if total else ""),
        f"  Successful: {pr['successful_items']} | Failed: {pr['failed_items']} | "
        f"Skipped: {pr['skipped_items']}",
        "",
        "Performance",
        f"  Success rate: {perf['success_rate']:.1f}%",
        f"  Throughput: {perf['throughput']:.1f} items/sec",
        "  ETA: "
        + (
            "done"
            if data["status"] == "completed"
            else "-"
            if data["status"] == "failed"
            else format_duration(perf["eta_seconds"])
        ),
        f"  Elapsed (first start to {'now' if data['live'] else 'last update'}): "
        f"{format_duration(perf['elapsed_seconds'])}",
        f"  Active time (all runs): {format_duration(perf['active_seconds'])}",
        "",
        "Resume point",
        f"  Watermark (first unfinished index): {rp['watermark']}",
        f"  Finished above the watermark: {rp['finished_above_watermark']}"
        + (
            f" ({', '.join(map(str, rp['finished_above_sample']))}"
            + (", ..." if rp["finished_above_watermark"] > len(rp["finished_above_sample"]) else "")
            + ")"
            if rp["finished_above_watermark"]
            else ""
        ),
        f"  Last processed index: {val(rp['last_processed_index'])}",
        f"  Last processed item: {val(rp['last_processed_item'])}",
    ]
    if rp["prefix_item"] and rp["prefix_item"] != rp["last_processed_item"]:
        lines.append(f"  Last item of the finished prefix: {rp['prefix_item']}")
    if rp["batch_id"]:
        lines.append(f"  Batch id: {rp['batch_id']}")
    if rp["keys_done"]:
        lines.append(f"  Keys done: {rp['keys_done']}")
    for name, part in rp["parts"].items():
        state = "finished" if part["finished"] else f"watermark {part['watermark']}"
        lines.append(
            f"  Part {name}: {state}, {part['finished_above_watermark']} finished above"
            + (f", total {part['total']}" if part["total"] is not None else "")
        )
    lines += ["", "Errors", f"  Error count: {err['error_count']}"]
    if err["error_count"] or err["error_message"]:
        lines.append(f"  Last error: {val(err['error_message'])}")
        lines.append(f"  Last error time: {val(err['last_error_time'])}")
        recent = err["recent_errors"]
        if recent:
            lines.append(f"  Recent errors ({len(recent)}):")
            lines.extend(f"    {e['time']}  {e['message']}" for e in recent[-10:])
    lines += ["", "Input validation"]
    if not inp["input_file"]:
        lines.append("  No input file recorded")
    else:
        lines.append(f"  Input file: {inp['input_file']}")
        lines.append(f"  Recorded hash: {val(inp['recorded_hash'])}")
        if inp["unchanged"] is True:
            lines.append("  Result: unchanged (hash matches)")
        elif inp["unchanged"] is False:
            lines.append(f"  Result: CHANGED: {inp['reason']}")
        else:
            lines.append(f"  Result: not checked ({inp['reason']})")
    if data["output_file"] or data["config_hash"] or data["metadata"]:
        lines.append("")
    if data["output_file"]:
        lines.append(f"Output file: {data['output_file']}")
    if data["config_hash"]:
        lines.append(f"Config hash: {data['config_hash']}")
    if data["metadata"]:
        lines.append(f"Metadata: {json.dumps(data['metadata'], ensure_ascii=False)}")
    lines.append(f"History snapshots: {data['history_snapshots']}")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    """``show STAGE``: one stage in detail, with its input file re-hashed."""
    manager = _manager(args)
    stage = _require_stage(manager, args.stage)
    info = manager.inspect(stage)
    if info.state is None:
        raise CliError(info.error or f"stage {stage!r}: no readable checkpoint")
    data = _show_data(manager, info)
    if args.json:
        _print_json(data)
    else:
        _out(_show_text(data))
    return EXIT_OK


def _history_points(manager: UnifiedCheckpointManager, info: StageInfo) -> list[render.ChartPoint]:
    """Processed count and average throughput at each readable snapshot, plus the current one."""
    points: list[render.ChartPoint] = []

    def point(state: CheckpointState, fallback: float, label: str) -> render.ChartPoint:
        p = state.progress
        moments = [t for t in (_parse_iso(state.updated_at), p.last_update_time) if t is not None]
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
        "generated_at": _iso(time.time()),
        "overall_progress": round(manager.overall_progress(infos), 3),
        "active": sum(
            s in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING) for s in statuses
        ),
        "completed": sum(s is CheckpointStatus.COMPLETED for s in statuses),
        "failed": sum(s is CheckpointStatus.FAILED for s in statuses),
        "corrupt": sum(info.state is None for info in infos),
        "stages": [
            {**_info_json(info), "eta": render.eta_text(info) if info.state else None}
            for info in infos
        ],
    }


def cmd_report(args: argparse.Namespace) -> int:
    """``report``: seed 003's progress report as text, JSON or a self-contained HTML page."""
    manager = _manager(args)
    infos = manager.list_checkpoints()
    if args.html is not None:
        target = Path(args.html)
        series = {info.stage: _history_points(manager, info) for info in infos}
        page = render.render_html_report(
            infos,
            series,
            location=str(manager.checkpoint_dir),
            overall_percent=manager.overall_progress(infos),
        )
        atomic_write_bytes(
            target, page.encode("utf-8"), temp_path=target.with_name(f".{target.name}.tmp")
        )
        note = f"wrote HTML report ({len(infos)} stage{'s' if len(infos) != 1 else ''}) to {target}"
        if args.json:
            print(note, file=sys.stderr)
        else:
            _out(note)
            return EXIT_OK
    if args.json:
        _print_json(_report_json(manager, infos))
        return EXIT_OK
    if not infos:
        _out(_no_checkpoints_line(manager))
        return EXIT_OK
    _out(manager.report())
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``export --output F``: every stage as one JSON document, written atomically."""
    manager = _manager(args)
    document = manager.export(args.output)
    count = len(document["stages"])
    _out(f"exported {count} stage{'s' if count != 1 else ''} to {Path(args.output)}")
    return EXIT_OK


def _check_not_live(manager: UnifiedCheckpointManager, stages: Sequence[str], verb: str) -> None:
    for name in stages:
        lock = manager.store.lock(name)
        if lock.is_held_elsewhere():
            pid = lock.holder_pid()
            who = f"process {pid}" if pid else "another live process"
            raise CheckpointLockedError(
                f"stage {name!r} is being written by {who}; stop it first or {verb} with --force",
                stage=name,
                path=manager.store.describe(name),
                holder_pid=pid,
            )


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")


def _confirm_destructive(args: argparse.Namespace, verb: str, what: str) -> None:
    """Ask on a terminal; without one, refuse unless ``--force`` (nothing changed either way)."""
    if args.force:
        return
    if not _is_tty(sys.stdin):
        raise CliError(
            f"refusing to {verb} {what} without confirmation: standard input is not a "
            f"terminal; nothing was changed (pass --force to {verb} anyway, or --dry-run to see "
            f"what would go)"
        )
    if not _confirm(f"{verb.capitalize()} {what}?"):
        raise CliError(f"{verb} of {what} not confirmed; nothing was changed")


def _reset_preview(manager: UnifiedCheckpointManager, name: str) -> str:
    info = manager.inspect(name)
    if info.state is None:
        return f"would reset {name} ({info.status}): its checkpoint files are removed"
    p = info.state.progress
    return (
        f"would reset {name} ({info.state.status.value}, {p.processed_items}/{p.total_items} "
        f"processed): its progress is forgotten (a snapshot stays in history) and its next run "
        f"starts over"
    )


def cmd_reset(args: argparse.Namespace) -> int:
    """``reset STAGE|all``: forget progress; a snapshot of each readable stage stays in history."""
    manager = _manager(args)
    if args.stage == "all":
        targets = manager.stages()
        if not targets:
            _out(_no_checkpoints_line(manager) + "; nothing to reset")
            return EXIT_OK
        what = f"all {len(targets)} stages ({', '.join(targets)})"
    else:
        targets = [_require_stage(manager, args.stage)]
        what = f"stage {targets[0]}"
    if args.dry_run:
        with _quiet_engine():
            for name in targets:
                _out(_reset_preview(manager, name))
        _out("dry run: nothing was changed")
        return EXIT_OK
    if not args.force:
        _check_not_live(manager, targets, "reset")
    _confirm_destructive(args, "reset", what)
    done: list[str] = []
    with _quiet_engine():
        for name in targets:
            info = manager.inspect(name)
            if info.state is None:
                # manager.reset(stage) opens the checkpoint first, which fails on a corrupt
                # one: remove its files directly (what reset("all") does for such a stage).
                if not args.force:
                    _check_not_live(manager, [name], "reset")
                manager.store.delete(name)
                done.append(name)
            else:
                done += manager.reset(name, force=args.force)
    manager.close()
    for name in done:
        _out(f"reset {name}")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    """``cleanup --days N``: old snapshots and (with ``--keep 0``) old finished checkpoints."""
    manager = _manager(args)
    if not manager.checkpoint_dir.is_dir():
        _out(_no_checkpoints_line(manager) + "; nothing to clean up")
        return EXIT_OK
    planned = manager.cleanup(args.days, keep_latest=args.keep, dry_run=True)
    if not planned:
        _out(
            f"nothing older than {args.days:g} days to remove in {manager.checkpoint_dir} "
            f"(kept the newest {args.keep} version(s) of each stage, its current checkpoint "
            f"first; running, paused and live stages are never removed)"
        )
        return EXIT_OK
    if args.dry_run:
        for item in planned:
            _out(f"would remove {item}")
        _out(f"dry run: {_count(len(planned), 'item')} would be removed; nothing was changed")
        return EXIT_OK
    if _is_tty(sys.stdin) and not args.force:
        for item in planned:
            _out(f"will remove {item}")
    _confirm_destructive(
        args, "clean up", f"{_count(len(planned), 'item')} in {manager.checkpoint_dir}"
    )
    removed = manager.cleanup(args.days, keep_latest=args.keep)
    for item in removed:
        _out(f"removed {item}")
    _out(f"removed {_count(len(removed), 'item')}")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cmd_set(args: argparse.Namespace) -> int:
    """``set STAGE INDEX``: move the resume point (takes the stage's lock)."""
    manager = _manager(args)
    stage = _require_stage(manager, args.stage)
    try:
        with _quiet_engine():
            change = manager.set_position(stage, args.index, part=args.part)
    except ValueError as exc:
        raise CliError(f"stage {stage!r}: {exc}; nothing was changed") from None
    finally:
        manager.close()
    where = f" (history snapshot {change.snapshot_id})" if change.snapshot_id else ""
    if args.part is None:
        _out(
            f"{stage}: resume point moved from {change.before} to {change.after}; items below "
            f"{change.after} count as done{where}"
        )
    else:
        _out(f"{stage}: resume point of part {args.part} moved to {change.after}{where}")
    if change.previous_status is not change.status:
        _out(
            f"{stage} was {change.previous_status.value} and is now {change.status.value}: its "
            f"next run redoes the items from {change.after} on"
        )
    return EXIT_OK


def _history_rows(manager: UnifiedCheckpointManager, stage: str) -> list[dict[str, Any]]:
    rows = []
    for entry in manager.store.list_history(stage):
        row: dict[str, Any] = {
            "id": entry.snapshot_id,
            "time": _iso(entry.created),  # replaced by the record's own time when readable
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
    manager = _manager(args)
    stage = _require_stage(manager, args.stage, history=True)
    rows = _history_rows(manager, stage)
    if args.json:
        _print_json({"stage": stage, "snapshots": rows})
        return EXIT_OK
    if not rows:
        _out(f"no history snapshots for {stage}")
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
    _out(
        render.format_plain_table(
            ["Snapshot", "Time (UTC)", "Reason", "Status", "Processed"], table
        )
    )
    _out()
    _out(f"restore one with: restore {stage} SNAPSHOT")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    """``restore STAGE SNAPSHOT``: the snapshot becomes the checkpoint; the current one is kept."""
    manager = _manager(args)
    stage = _require_stage(manager, args.stage, history=True)
    try:
        result = manager.restore(stage, args.snapshot)
    finally:
        manager.close()
    p = result.state.progress
    _out(
        f"restored {stage} from snapshot {args.snapshot} ({result.state.status.value}, "
        f"{p.processed_items}/{p.total_items} processed)"
    )
    if result.saved_as:
        _out(f"the previous checkpoint was saved to history as {result.saved_as}")
    return EXIT_OK


def _watch_renderable(manager: UnifiedCheckpointManager) -> Any:
    from rich.console import Group
    from rich.text import Text

    infos = manager.list_checkpoints()
    stamp = _iso(time.time())
    if not infos:
        return Text(f"{_no_checkpoints_line(manager)} (as of {stamp} UTC)")
    overall = manager.overall_progress(infos)
    title = f"Checkpoints in {manager.checkpoint_dir}"
    footer = Text(
        f"Overall pipeline progress: {overall:.1f}%  ·  {stamp} UTC  ·  Ctrl-C to stop",
        style="dim",
    )
    return Group(
        render.rich_stage_table(infos, _modified(manager, infos), title=title, watch=True), footer
    )


def _watch_plain(manager: UnifiedCheckpointManager) -> str:
    infos = manager.list_checkpoints()
    stamp = _iso(time.time())
    if not infos:
        return f"{_no_checkpoints_line(manager)} (as of {stamp} UTC)"
    rows = [
        render.watch_row(info, mtime)
        for info, mtime in zip(infos, _modified(manager, infos), strict=True)
    ]
    lines = [render.format_plain_table(render.WATCH_HEADERS, rows)]
    lines += [f"{info.stage}: {info.error}" for info in infos if info.error]
    lines.append(f"Overall pipeline progress: {manager.overall_progress(infos):.1f}% ({stamp} UTC)")
    return "\n".join(lines)


def cmd_watch(args: argparse.Namespace) -> int:
    """``watch``: re-read every stage each ``--interval`` seconds until Ctrl-C."""
    manager = _manager(args)
    tty = _is_tty(sys.stdout)
    try:
        if args.once or not tty:
            while True:
                if tty:
                    from rich.console import Console

                    Console().print(_watch_renderable(manager))
                else:
                    _out(_watch_plain(manager))
                    sys.stdout.flush()
                if args.once:
                    return EXIT_OK
                time.sleep(args.interval)
                _out()
        from rich.live import Live

        with Live(_watch_renderable(manager), auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(_watch_renderable(manager), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK


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
        f"  First recorded: {_iso(stats['first_at']) or '-'} | Last: {_iso(stats['last_at']) or '-'}",
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
    manager = _manager(args)
    stage = _require_stage(manager, args.stage)
    if not Ledger.available(manager.store):
        raise CliError(
            f"stage {stage!r}: the checkpoints in {manager.store.location} are JSON files, which "
            f"keep no per-item ledger; run the stage with --store sqlite"
        )
    data = _ledger_data(Ledger(manager.store, stage), args.limit, args.include_failed)
    if args.json:
        _print_json(data)
    else:
        _out(_ledger_text(data))
    return EXIT_OK


# Parser --------------------------------------------------------------------------------------


def storable_index(text: str) -> int:
    """``type=`` of ``set``'s INDEX: a whole number from 0 to what a checkpoint can store."""
    value = non_negative_int(text)
    if value > MAX_INDEX:
        raise argparse.ArgumentTypeError(
            f"{text} is too large to store in a checkpoint (at most {MAX_INDEX})"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (global options are accepted before or after the command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"directory holding <stage>.json checkpoints (default: {DEFAULT_DIR})",
    )
    common.add_argument(
        "--store",
        type=store_argument,
        metavar="STORE",
        default=argparse.SUPPRESS,
        help="checkpoint store (default: sqlite if the directory holds checkpoints.sqlite3, "
        "else json)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also log the engine's INFO messages",
    )
    parser = argparse.ArgumentParser(
        description="Inspect and manage the checkpoints of a staged crawl pipeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> Any:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = add("list", cmd_list, "list every stage's checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON only")

    p = add("show", cmd_show, "show one stage in detail (and re-hash its input file)")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true", help="print JSON only")

    p = add("report", cmd_report, 'print the "Pipeline Progress Report"')
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument(
        "--html", metavar="FILE", help="write a self-contained HTML report with charts to FILE"
    )

    p = add("export", cmd_export, "write every stage as one JSON document")
    p.add_argument("--output", "-o", metavar="FILE", required=True)

    p = add("reset", cmd_reset, "reset a stage, or all stages, to nothing done")
    p.add_argument("stage", metavar="STAGE|all")
    p.add_argument(
        "--force",
        action="store_true",
        help="do not ask (needed without a terminal); also reset a stage held by a live process",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be reset; change nothing"
    )

    p = add(
        "cleanup",
        cmd_cleanup,
        "remove old history snapshots (and, with --keep 0, old completed checkpoints)",
    )
    p.add_argument(
        "--days",
        type=non_negative_float,
        required=True,
        metavar="N",
        help="remove only what is older than N days (0: everything not kept by --keep)",
    )
    p.add_argument(
        "--keep",
        type=non_negative_int,
        default=1,
        metavar="K",
        help="versions of each stage kept whatever their age, its current checkpoint counting as "
        "the newest (default: 1, the current checkpoint; 0 lets an old completed one go too)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be removed; change nothing"
    )
    p.add_argument("--force", action="store_true", help="do not ask (needed without a terminal)")

    p = add("set", cmd_set, "move a stage's resume point by hand")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument(
        "index",
        type=storable_index,
        metavar="INDEX",
        help="first index to redo (0 to the stage's total); a completed stage becomes paused",
    )
    p.add_argument("--part", metavar="NAME", help="move the position within one part (split)")

    p = add("history", cmd_history, "list a stage's history snapshots")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true", help="print JSON only")

    p = add("restore", cmd_restore, "make a history snapshot the current checkpoint")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("snapshot", metavar="SNAPSHOT")

    p = add("watch", cmd_watch, "a live table of every stage, refreshed until Ctrl-C")
    p.add_argument(
        "--interval", type=positive_float, default=2.0, metavar="S", help="seconds (default: 2)"
    )
    p.add_argument("--once", action="store_true", help="render once and exit")

    p = add("ledger", cmd_ledger, "the per-item ledger: remaining work and statistics (sqlite)")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument(
        "--limit",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="remaining items listed (default: 20)",
    )
    p.add_argument(
        "--include-failed", action="store_true", help="count failed items as remaining work"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # SUPPRESS defaults, filled in here, let the options come before or after the command.
    args.checkpoint_dir = getattr(args, "checkpoint_dir", DEFAULT_DIR)
    args.store = getattr(args, "store", None)
    args.verbose = getattr(args, "verbose", False)
    _configure_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with contextlib.ExitStack() as args.cleanup:
            return func(args)
    except CliError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    except CheckpointError as exc:
        print(_error_line(exc), file=sys.stderr)
    except BrokenPipeError:
        # ``list | head``: the reader went away; say nothing more.
        with contextlib.suppress(OSError):
            sys.stdout = open(  # noqa: SIM115 - replaced for the interpreter's final flush
                "/dev/null", "w"
            )
        return EXIT_ERROR
    except OSError as exc:
        print(_os_error_line(exc), file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
