"""The commands that change checkpoints: ``reset``, ``cleanup``, ``set``.

Each asks on a terminal (or needs ``--force`` without one) where it destroys progress, and
has a ``--dry-run`` that changes nothing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.argtypes import non_negative_int
from common.manager import MAX_INDEX, UnifiedCheckpointManager
from tools.checkpoint_cli.base import (
    EXIT_OK,
    CliError,
    confirm_destructive,
    count,
    is_tty,
    no_checkpoints_line,
    open_manager,
    out,
    quiet_engine,
    require_stage,
)


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


def _dry_run_verdict(
    manager: UnifiedCheckpointManager, stages: Sequence[str], action: str, summary: str
) -> None:
    """A dry run's last line: that the real ``action`` would be refused now (a live process
    writes one of ``stages``: :meth:`UnifiedCheckpointManager.live_refusal`, no lock taken),
    or ``summary``."""
    refusal = manager.live_refusal(stages)
    if refusal is not None:
        out(f"dry run: the {action} would be refused now: {refusal}")
    else:
        out(f"dry run: {summary}")


def cmd_reset(args: argparse.Namespace) -> int:
    """``reset STAGE|all``: forget progress; a snapshot of each readable stage stays in history."""
    manager = open_manager(args)
    if args.stage == "all":
        targets = manager.stages()
        if not targets:
            out(no_checkpoints_line(manager) + "; nothing to reset")
            return EXIT_OK
        what = f"all {len(targets)} stages ({', '.join(targets)})"
    else:
        targets = [require_stage(manager, args.stage)]
        what = f"stage {targets[0]}"
    if args.dry_run:
        with quiet_engine():
            for name in targets:
                out(_reset_preview(manager, name))
        _dry_run_verdict(manager, targets, "reset", "nothing was changed")
        return EXIT_OK
    done: list[str] = []
    # The stages' writer locks are held from before the question until the files are gone: a
    # stage a live process writes is refused, changing nothing (--force only skips the question).
    with manager.writing(targets), quiet_engine():
        confirm_destructive(args, "reset", what)
        for name in targets:
            info = manager.inspect(name)
            if info.state is None:
                # manager.reset(stage) keeps the journals for a restore; a corrupt record
                # cannot be restored: its files go whole.
                manager.store.delete(name)
                done.append(name)
            else:
                done += manager.reset(name)
    manager.close()
    for name in done:
        out(f"reset {name}")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    """``cleanup --days N``: old snapshots and (with ``--keep 0``) old finished checkpoints."""
    manager = open_manager(args)
    if not manager.checkpoint_dir.is_dir():
        out(no_checkpoints_line(manager) + "; nothing to clean up")
        return EXIT_OK
    planned = manager.cleanup(args.days, keep_latest=args.keep, dry_run=True)
    if not planned:
        out(
            f"nothing older than {args.days:g} days to remove in {manager.checkpoint_dir} "
            f"(kept the newest {args.keep} version(s) of each stage, its current checkpoint "
            f"first; running and paused stages are never removed)"
        )
        return EXIT_OK
    # A stage's checkpoint or snapshots: "stage" or "stage/history/<id>".
    stages = list(dict.fromkeys(item.split("/", 1)[0] for item in planned))
    if args.dry_run:
        for item in planned:
            out(f"would remove {item}")
        _dry_run_verdict(
            manager,
            stages,
            "cleanup",
            f"{count(len(planned), 'item')} would be removed; nothing was changed",
        )
        return EXIT_OK
    # Every stage it removes anything of is held from before the question (refused while a
    # live process writes it, changing nothing); the manager's cleanup holds them too.
    with manager.writing(stages):
        if is_tty(sys.stdin) and not args.force:
            for item in planned:
                out(f"will remove {item}")
        confirm_destructive(
            args, "clean up", f"{count(len(planned), 'item')} in {manager.checkpoint_dir}"
        )
        removed = manager.cleanup(args.days, keep_latest=args.keep)
    for item in removed:
        out(f"removed {item}")
    out(f"removed {count(len(removed), 'item')}")
    return EXIT_OK


def storable_index(text: str) -> int:
    """``type=`` of ``set``'s INDEX: a whole number from 0 to what a checkpoint can store."""
    value = non_negative_int(text)
    if value > MAX_INDEX:
        raise argparse.ArgumentTypeError(
            f"{text} is too large to store in a checkpoint (at most {MAX_INDEX})"
        )
    return value


def cmd_set(args: argparse.Namespace) -> int:
    """``set STAGE INDEX``: move the resume point (takes the stage's lock)."""
    manager = open_manager(args)
    stage = require_stage(manager, args.stage)
    try:
        with quiet_engine():
            change = manager.set_position(stage, args.index, part=args.part)
    except ValueError as exc:
        reason = str(exc) if repr(stage) in str(exc) else f"stage {stage!r}: {exc}"
        raise CliError(f"{reason}; nothing was changed") from None
    finally:
        manager.close()
    where = f" (history snapshot {change.snapshot_id})" if change.snapshot_id else ""
    if args.part is None:
        out(
            f"{stage}: resume point moved from {change.before} to {change.after}; items below "
            f"{change.after} count as done{where}"
        )
    else:
        out(f"{stage}: resume point of part {args.part} moved to {change.after}{where}")
    if change.previous_status is not change.status:
        out(
            f"{stage} was {change.previous_status.value} and is now {change.status.value}: its "
            f"next run redoes the items from {change.after} on"
        )
    return EXIT_OK
