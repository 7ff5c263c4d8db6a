"""What every command shares: output helpers, errors, logging, opening the checkpoints."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from common.errors import CheckpointError, CheckpointUnreadableError, InvalidStageNameError
from common.io.paths import directory_problem
from common.manager import StageInfo, UnifiedCheckpointManager
from common.progress import ProgressSnapshot
from common.state import utc_iso
from common.stores import open_store
from common.stores.base import validate_stage_name
from common.stores.factory import StoreMismatchError, select_store
from tools.checkpoint_cli.render.text import eta_seconds_of
from tools.logfilter import SayOnce
from tools.orchestrator.stage_table import find_stage, short_name

EXIT_OK = 0

EXIT_ERROR = 1

EXIT_USAGE = 2

EXIT_INTERRUPTED = 130

DEFAULT_DIR = "data/checkpoints"

log = logging.getLogger("checkpoint_manager_cli")


class CliError(Exception):
    """An error the CLI reports itself (one line, exit 1)."""


class CliUsageError(CliError):
    """A command line naming what does not exist, such as an unknown stage (one line, exit 2)."""


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def print_json(data: Any) -> None:
    out(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def iso(timestamp: float | None) -> str | None:
    """``utc_iso`` of ``timestamp``, None for None."""
    return None if timestamp is None else utc_iso(timestamp)


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def error_line(exc: BaseException) -> str:
    """One line: ``error: <message>``, naming the stage when the message does not."""
    message = " ".join(str(exc).split())
    stage = getattr(exc, "stage", None)
    if isinstance(exc, CheckpointError) and stage and stage not in message:
        message = f"stage {stage!r}: {message}"
    return f"error: {message}"


def os_error_line(exc: OSError) -> str:
    what = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"error: {what}: {reason}" if what else f"error: {reason}"


class _CliLogFilter(SayOnce):
    """Say each distinct engine message once, and drop load failures the CLI reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("common.stores") and str(record.msg).startswith(
            "Failed to load checkpoint"
        ):
            return False  # shown as the stage's `corrupt` status or as the command's error
        return super().filter(record)  # `watch` re-reads every few seconds


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter())
    handler.addFilter(_CliLogFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


@contextlib.contextmanager
def quiet_engine() -> Iterator[None]:
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


def open_manager(args: argparse.Namespace) -> UnifiedCheckpointManager:
    directory = Path(args.checkpoint_dir)
    if directory.exists() and not directory.is_dir():
        raise CliError(f"checkpoint directory {directory} is not a directory")
    if (directory / "checkpoints").is_dir():
        # A data dir (--data-dir's, ./data): read as a checkpoint dir, its orchestrator.json
        # was a "corrupt" stage, and `reset all --force` removed it.
        raise CliError(
            f"{directory} is a data directory, not a checkpoint directory: its checkpoints are "
            f"in {directory / 'checkpoints'}; pass --checkpoint-dir {directory / 'checkpoints'} "
            f"(nothing was changed)"
        )
    try:
        kind = select_store(args.store, directory).kind
    except StoreMismatchError as exc:
        raise CliError(str(exc)) from None
    store = open_store(kind, directory)
    args.cleanup.callback(store.close)
    return UnifiedCheckpointManager(directory, store=store)


def unknown_stage(manager: UnifiedCheckpointManager, stage: str) -> CliUsageError:
    """The usage error for ``stage``: one line listing the stages the directory holds."""
    known = [
        name if short_name(name) == name else f"{name} ({short_name(name)})"
        for name in manager.stages()
    ]
    where = manager.store.location
    if not manager.checkpoint_dir.exists():
        where += ", which does not exist"
    return CliUsageError(
        f"no checkpoint for stage {stage!r} in {where} "
        f"(known stages: {', '.join(known) if known else 'none'})"
    )


def require_stage(manager: UnifiedCheckpointManager, stage: str, *, history: bool = False) -> str:
    """The checkpoint name ``stage`` means here: itself, or the pipeline stage whose short name
    it is (``discovery`` -> ``stage1_discovery``); it must have a checkpoint (or, with
    ``history``, any snapshot). The one place a command line's STAGE is resolved; a name that
    cannot be a stage is a usage error too."""
    try:
        validate_stage_name(stage)
    except InvalidStageNameError as exc:
        raise CliUsageError(" ".join(str(exc).split())) from None
    names = [stage]
    spec = find_stage(stage)
    if spec is not None and spec.name != stage:
        names.append(spec.name)  # a stage literally named "discovery" comes first
    for name in names:
        if name in manager.stages():
            return name
        if history and manager.store.list_history(name):
            return name
    raise unknown_stage(manager, stage)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stage whose checkpoint could not be read, and the ``error:`` line that says why."""

    stage: str
    line: str


def read_stages(manager: UnifiedCheckpointManager) -> tuple[list[StageInfo], list[Unreadable]]:
    """Every stage that can be read (a corrupt one too: its info says so), and one
    :class:`Unreadable` per stage whose file this process may not read (EACCES, EIO), so that
    one such file does not hide the others."""
    infos: list[StageInfo] = []
    unreadable: list[Unreadable] = []
    for stage in manager.stages():
        try:
            infos.append(manager.inspect(stage))
        except CheckpointUnreadableError as exc:
            unreadable.append(Unreadable(stage, error_line(exc)))
    return infos, unreadable


def corrupt_stages(infos: Sequence[StageInfo]) -> list[Unreadable]:
    """The stages whose checkpoint holds no readable record, as ``error:`` lines naming the
    files (for commands that cannot show such a stage at all)."""
    return [
        Unreadable(info.stage, "error: " + " ".join(info.error.split()))
        for info in infos
        if info.state is None and info.error and info.status == "corrupt"
    ]


def say_unreadable(unreadable: Sequence[Unreadable]) -> int:
    """Print each line on stderr; the exit code: 1 when anything could not be read, else 0."""
    for item in unreadable:
        print(item.line, file=sys.stderr)
    return EXIT_ERROR if unreadable else EXIT_OK


def no_checkpoints_line(manager: UnifiedCheckpointManager) -> str:
    if not manager.checkpoint_dir.exists():
        return f"no checkpoints in {manager.checkpoint_dir} (the directory does not exist)"
    return f"no checkpoints in {manager.checkpoint_dir}"


def modified_times(
    manager: UnifiedCheckpointManager, infos: Sequence[StageInfo]
) -> list[float | None]:
    return [manager.store.modified_time(info.stage) for info in infos]


def progress_counts(snap: ProgressSnapshot) -> dict[str, Any]:
    """A stage's counts and percent done under their JSON names (``list``, ``show``...)."""
    return {
        "total_items": snap.total,
        "processed_items": snap.processed,
        "successful_items": snap.successful,
        "failed_items": snap.failed,
        "skipped_items": snap.skipped,
        "percent": round(snap.percent, 3),
    }


def figures(info: StageInfo) -> dict[str, Any] | None:
    snap = info.progress()
    if snap is None:
        return None
    return {
        **progress_counts(snap),
        "success_rate": round(snap.success_rate, 3),
        "throughput": round(snap.throughput, 3),
        "eta_seconds": eta_seconds_of(info),
        "active_seconds": round(snap.active_seconds, 3),
    }


def info_json(info: StageInfo) -> dict[str, Any]:
    return {
        "stage": info.stage,
        "status": info.status,
        "live": info.live,
        "location": info.location,
        "updated_at": info.state.updated_at if info.state is not None else None,
        "progress": figures(info),
        "restored_from_backup": info.restored_from_backup,
        "error": info.error,
    }


def output_file(option: str, text: str) -> Path:
    """The FILE of ``option`` (``--output``, ``--html``), refused with the user's path and
    what is wrong with it before anything is written: a directory, or a parent directory that
    does not exist (it is not created) or is not one."""
    path = Path(text)
    if path.is_dir():
        raise CliError(f"{option} {path} is a directory (nothing was written)")
    problem = directory_problem(path.parent)
    if problem is not None:
        raise CliError(f"{option}: {problem} (nothing was written)")
    return path


def cannot_write(option: str | None, path: Path, exc: OSError) -> CliError:
    """A failed write of ``path`` in the user's words (not the temporary file's name)."""
    where = f"{option} {path}" if option else str(path)
    return CliError(f"{where}: cannot write: {exc.strerror or exc} (nothing was written)")


def confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")  # then exit 130 like any Ctrl-C; nothing was changed
        raise
    return answer.strip().lower() in ("y", "yes")


def confirm_destructive(args: argparse.Namespace, verb: str, what: str) -> None:
    """Ask on a terminal; without one, refuse unless ``--force`` (nothing changed either way)."""
    if args.force:
        return
    if not is_tty(sys.stdin):
        raise CliError(
            f"refusing to {verb} {what} without confirmation: standard input is not a "
            f"terminal; nothing was changed (pass --force to {verb} anyway, or --dry-run to see "
            f"what would go)"
        )
    if not confirm(f"{verb.capitalize()} {what}?"):
        raise CliError(f"{verb} of {what} not confirmed; nothing was changed")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
