"""``show STAGE``: one stage in detail, with its input file re-hashed."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from common.checkpoint import EnhancedCheckpoint
from common.manager import StageInfo, UnifiedCheckpointManager
from common.progress import format_duration
from common.state import CheckpointState
from tools.checkpoint_cli.base import (
    EXIT_OK,
    CliError,
    iso,
    open_manager,
    out,
    parse_iso,
    print_json,
    progress_counts,
    quiet_engine,
    require_stage,
)
from tools.checkpoint_cli.render.text import eta_label, eta_seconds_of


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
    with quiet_engine():
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
    end = now if info.live else (progress.last_update_time or parse_iso(state.updated_at))
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
            "start_time": iso(progress.start_time),
            "last_update_time": iso(progress.last_update_time),
        },
        "runs": state.run_count,
        "recoveries": state.recoveries,
        "progress": progress_counts(snap),
        "performance": {
            "success_rate": round(snap.success_rate, 3),
            "throughput": round(snap.throughput, 3),
            "eta_seconds": eta_seconds_of(info),
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
        f"  ETA: {eta_label(data['status'], perf['eta_seconds'])}",
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
    manager = open_manager(args)
    stage = require_stage(manager, args.stage)
    info = manager.inspect(stage)
    if info.state is None:
        raise CliError(info.error or f"stage {stage!r}: no readable checkpoint")
    data = _show_data(manager, info)
    if args.json:
        print_json(data)
    else:
        out(_show_text(data))
    return EXIT_OK
