"""``UnifiedCheckpointManager``: every stage of a pipeline in one checkpoint directory."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.checkpoint import EnhancedCheckpoint
from common.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointLockedError,
    StageNotFoundError,
)
from common.io.atomic import atomic_write_bytes, ensure_private_dir
from common.outputs import refuse_replacing
from common.ownership import live_writer_error, writers_held
from common.progress import ProgressSnapshot, format_duration
from common.restore import RestoreResult, restore_snapshot
from common.state import CheckpointState, parse_checkpoint
from common.status import CheckpointStatus, transition
from common.stores.base import CheckpointStore, WriterLock, validate_stage_name
from common.stores.json_file import JsonFileStore

__all__ = ["MAX_INDEX", "PositionChange", "RestoreResult", "StageInfo", "UnifiedCheckpointManager"]

logger = logging.getLogger(__name__)

_REPORT_RULE = "=" * 80

#: The largest resume index a checkpoint can store (a signed 64-bit integer).
MAX_INDEX = 2**63 - 1
NO_RECORD = "no checkpoint record"


@dataclass(frozen=True, slots=True)
class StageInfo:
    """One stage as :meth:`UnifiedCheckpointManager.list_checkpoints` sees it.

    ``state`` is None when the checkpoint cannot be read; ``error`` then says why.
    ``live`` is True when a process holds the stage's writer lock right now.
    """

    stage: str
    location: str
    state: CheckpointState | None
    error: str | None
    live: bool
    restored_from_backup: bool = False

    @property
    def status(self) -> str:
        if self.state is None:
            return "missing" if self.error == NO_RECORD else "corrupt"
        return self.state.status.value

    def progress(self) -> ProgressSnapshot | None:
        if self.state is None:
            return None
        return self.state.progress.snapshot()


@dataclass(frozen=True, slots=True)
class PositionChange:
    """What :meth:`UnifiedCheckpointManager.set_position` did."""

    stage: str
    before: int
    after: int
    previous_status: CheckpointStatus
    status: CheckpointStatus
    snapshot_id: str | None


class UnifiedCheckpointManager:
    """Lists, reports on, exports, resets and cleans the checkpoints of every stage.

    Args:
        checkpoint_dir: the directory holding ``<stage>.json`` files (ignored when ``store``
            is given).
        store: another store (SQLite, PostgreSQL) instead of JSON files.
        clock: epoch seconds; injectable for tests.
        checkpoint_options: keyword arguments for every :class:`EnhancedCheckpoint` it opens.
    """

    def __init__(
        self,
        checkpoint_dir: Path | str = "data/checkpoints",
        *,
        store: CheckpointStore | None = None,
        clock: Callable[[], float] = time.time,
        **checkpoint_options: Any,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.store: CheckpointStore = store if store is not None else JsonFileStore(checkpoint_dir)
        self._clock = clock
        self._options = checkpoint_options
        self._open: dict[str, EnhancedCheckpoint] = {}
        self._held: dict[str, WriterLock] = {}

    # Access ------------------------------------------------------------------------------------

    def get_checkpoint(self, stage: str) -> EnhancedCheckpoint:
        """The checkpoint of ``stage`` (created empty if it has none yet); cached per stage."""
        validate_stage_name(stage)
        checkpoint = self._open.get(stage)
        if checkpoint is None:
            checkpoint = EnhancedCheckpoint(
                stage, store=self.store, clock=self._clock, **self._options
            )
            self._open[stage] = checkpoint
        return checkpoint

    def require(self, stage: str) -> EnhancedCheckpoint:
        """Like :meth:`get_checkpoint`, but raise :class:`StageNotFoundError` for unknown stages."""
        validate_stage_name(stage)
        known = tuple(self.store.list_stages())
        if stage not in known:
            listing = ", ".join(known) if known else "none"
            raise StageNotFoundError(
                f"no checkpoint for stage {stage!r} in {self.store.location} (known stages: "
                f"{listing})",
                stage=stage,
                path=self.store.describe(stage),
                known=known,
            )
        return self.get_checkpoint(stage)

    def stages(self) -> list[str]:
        return self.store.list_stages()

    def list_checkpoints(self) -> list[StageInfo]:
        """Every stage, readable or not, without changing anything on disk."""
        infos = []
        for stage in self.store.list_stages():
            infos.append(self.inspect(stage))
        return infos

    def inspect(self, stage: str) -> StageInfo:
        """Read one stage without taking its lock or writing anything."""
        location = self.store.describe(stage)
        live = stage not in self._held and self.store.lock(stage).is_held_elsewhere()
        try:
            loaded = self.store.load(stage, lambda d, p: parse_checkpoint(d, path=p, stage=stage))
        except CheckpointCorruptError as exc:
            return StageInfo(stage, location, None, str(exc), live)
        if loaded is None:
            return StageInfo(stage, location, None, NO_RECORD, live)
        state, _ = loaded.value
        if state.status is CheckpointStatus.RUNNING and not live:
            # Display what the next run will do with it: a crashed run is recovered.
            transition(state, CheckpointStatus.RECOVERING, stage=stage)
        return StageInfo(stage, location, state, None, live, loaded.restored_from_backup)

    # Figures -----------------------------------------------------------------------------------

    def overall_progress(self, infos: Iterable[StageInfo] | None = None) -> float:
        """Items processed over items known, all stages together, in percent (seed 003).

        A completed stage counts as fully done even when its total was unknown.
        """
        processed = total = 0
        for info in infos if infos is not None else self.list_checkpoints():
            snapshot = info.progress()
            if info.state is None or snapshot is None:
                continue
            stage_total = snapshot.total
            if info.state.status is CheckpointStatus.COMPLETED:
                stage_total = max(stage_total, snapshot.processed)
                processed += stage_total
            else:
                processed += min(snapshot.processed, stage_total) if stage_total else 0
            total += stage_total
        return 100.0 * processed / total if total else 0.0

    def report(self, infos: Sequence[StageInfo] | None = None) -> str:
        """Seed 003's "Pipeline Progress Report" as text (of ``infos``, default every stage)."""
        infos = self.list_checkpoints() if infos is None else infos
        lines = [_REPORT_RULE, "Pipeline Progress Report", _REPORT_RULE, ""]
        active = completed = failed = 0
        for info in infos:
            lines.append(f"Stage: {info.stage}")
            if info.state is None:
                lines.append("Status: corrupt")
                lines.append(f"Error: {info.error}")
                lines.append("")
                continue
            status = info.state.status
            snap = info.progress()
            assert snap is not None
            lines.append(f"Status: {status.value}")
            percent = 100.0 if status is CheckpointStatus.COMPLETED else snap.percent
            total = snap.total or (snap.processed if status is CheckpointStatus.COMPLETED else 0)
            lines.append(f"Progress: {percent:.1f}% ({snap.processed}/{total})")
            lines.append(f"Success Rate: {snap.success_rate:.1f}%")
            lines.append(f"Throughput: {snap.throughput:.1f} items/sec")
            if status in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING):
                lines.append(f"ETA: {_long_duration(snap.eta_seconds)}")
            elif status is CheckpointStatus.PAUSED:
                lines.append("ETA: paused")
            lines.append(
                f"Successful: {snap.successful} | Failed: {snap.failed} | Skipped: {snap.skipped}"
            )
            if info.state.error_message:
                lines.append(f"Last error: {info.state.error_message}")
            lines.append("")
            if status is CheckpointStatus.COMPLETED:
                completed += 1
            elif status is CheckpointStatus.FAILED:
                failed += 1
            elif status in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING):
                active += 1
        lines.append(f"Overall Pipeline Progress: {self.overall_progress(infos):.1f}%")
        lines.append(f"Active: {active} | Completed: {completed} | Failed: {failed}")
        lines.append(_REPORT_RULE)
        return "\n".join(lines)

    def export(self, path: Path | str | None = None) -> dict[str, Any]:
        """Every stage as one JSON document; written atomically to ``path`` when given.

        A ``path`` that is a stage's output, failed sidecar or checkpoint file is refused
        before anything is written (:func:`~common.outputs.refuse_replacing`)."""
        if path is not None:
            refuse_replacing(self.store, Path(path))
        infos = self.list_checkpoints()
        document: dict[str, Any] = {
            "exported_at": self._clock(),
            "checkpoint_location": self.store.location,
            "overall_progress": round(self.overall_progress(infos), 3),
            "stages": {},
        }
        for info in infos:
            entry: dict[str, Any] = {"status": info.status, "live": info.live}
            if info.state is not None:
                snap = info.progress()
                assert snap is not None
                entry["checkpoint"] = info.state.to_dict()
                entry["derived"] = {
                    "percent": round(snap.percent, 3),
                    "success_rate": round(snap.success_rate, 3),
                    "throughput": round(snap.throughput, 3),
                    "eta_seconds": snap.eta_seconds,
                }
            else:
                entry["error"] = info.error
            document["stages"][info.stage] = entry
        if path is not None:
            target = Path(path)
            ensure_private_dir(target.parent)
            data = json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"
            atomic_write_bytes(target, data, temp_path=target.with_name(f".{target.name}.tmp"))
        return document

    # Changes ---------------------------------------------------------------------------------

    def running_error(self, stage: str, holder_pid: int | None) -> CheckpointLockedError:
        """The refusal of a change to ``stage`` while a live process writes it."""
        return live_writer_error(self.store, stage, holder_pid)

    def writing(self, stages: Sequence[str]) -> contextlib.AbstractContextManager[None]:
        """Hold the writer lock of every stage in ``stages`` for the block (One writer).

        Raises :meth:`running_error` (having taken nothing) when a live process writes any of
        them: a change made beside a live writer would be overwritten by its next save. Locks
        this manager holds already are not taken twice (:func:`~common.ownership.writers_held`).
        """
        return writers_held(self.store, stages, self._held)

    def live_refusal(self, stages: Iterable[str]) -> CheckpointLockedError | None:
        """What :meth:`writing` would raise for ``stages`` now, or None; takes no lock (a dry
        run says what the real change would meet)."""
        for stage in stages:
            if stage in self._held:
                continue
            lock = self.store.lock(stage)
            if lock.is_held_elsewhere():
                return self.running_error(stage, lock.holder_pid())
        return None

    @contextlib.contextmanager
    def _refusing_live(self, stage: str) -> Iterator[None]:
        """Say a lock taken by the engine inside the block was refused in :meth:`running_error`'s
        words."""
        try:
            yield
        except CheckpointLockedError as exc:
            raise self.running_error(stage, exc.holder_pid) from None

    def reset(self, stage: str) -> list[str]:
        """Reset one stage, or every stage with ``"all"``; returns the stages reset.

        Each stage's writer lock is held while its files go, so a stage another live process
        writes is refused (:meth:`running_error`) before anything changes, for ``"all"`` too.
        """
        if stage == "all":
            targets = self.stages()
        else:
            validate_stage_name(stage)
            known = tuple(self.stages())
            if stage not in known:
                self.require(stage)  # raises StageNotFoundError listing the known stages
            targets = [stage]
        for name in targets:
            checkpoint = self._open.pop(name, None)
            if checkpoint is not None:
                checkpoint.close()  # this manager's own writer lets go first
        done = []
        with self.writing(targets):
            for name in targets:
                self._reset_files(name)
                done.append(name)
                logger.info("Reset checkpoint %s", name)
        return done

    def _reset_files(self, stage: str) -> None:
        info = self.inspect(stage)
        if info.state is not None:
            self.store.save_history(stage, info.state.to_dict(), "before-reset", self._clock())
        # The journals (and a store's done keys) stay until the stage next starts, which cuts
        # them as a fresh start: until then `restore` can bring the stage back whole.
        self.store.delete(stage, journals=False)

    def cleanup(self, days: float = 7, *, keep_latest: int = 1, dry_run: bool = False) -> list[str]:
        """Remove history snapshots and completed checkpoints older than ``days``.

        The newest ``keep_latest`` versions of each stage are kept whatever their age, its
        current checkpoint counting as the newest version: with the default of 1 a stage keeps
        its current checkpoint (completed or not) and loses only snapshots older than the
        cutoff; ``keep_latest=0`` lets an old completed checkpoint go too (a snapshot of it
        stays in the history). Running, paused, recovering and failed (resumable) stages are
        never removed. The writer lock of every stage it removes anything of is held while it
        does, so a stage a live process writes is refused, removing nothing at all
        (:meth:`running_error`), as :meth:`reset` does. With ``dry_run`` nothing is removed and
        no lock is taken (:meth:`live_refusal` says whether the real run would be refused).
        Returns what was (or would be) removed: ``stage`` for a checkpoint,
        ``stage/history/<id>`` for a snapshot.
        """
        if keep_latest < 0:
            raise ValueError(f"keep_latest must be >= 0, got {keep_latest}")
        cutoff = self._clock() - days * 86400
        snapshots: list[tuple[str, str]] = []
        doomed: list[tuple[str, CheckpointState]] = []
        for stage in self.stages():
            info = self.inspect(stage)
            has_current = info.state is not None
            keep_snapshots = max(0, keep_latest - (1 if has_current else 0))
            entries = self.store.list_history(stage)
            for entry in entries[: max(0, len(entries) - keep_snapshots)]:
                if entry.created < cutoff:
                    snapshots.append((stage, entry.snapshot_id))
            modified = self.store.modified_time(stage)
            if (
                keep_latest == 0
                and info.state is not None
                and info.state.status is CheckpointStatus.COMPLETED
                and modified is not None
                and modified < cutoff
            ):
                doomed.append((stage, info.state))
        removed = [f"{stage}/history/{sid}" for stage, sid in snapshots]
        removed += [stage for stage, _ in doomed]
        if dry_run:
            return removed
        # Anything of a stage goes only under its writer lock: a stage a live process writes is
        # refused before anything is removed (its writer would save its checkpoint again, and
        # may be adding to its history).
        touched = dict.fromkeys([stage for stage, _ in snapshots] + [stage for stage, _ in doomed])
        with self.writing(list(touched)):
            for stage, sid in snapshots:
                self.store.delete_history(stage, sid)
            for stage, state in doomed:
                self.store.save_history(stage, state.to_dict(), "before-cleanup", self._clock())
                self.store.delete(stage)
        return removed

    # Position and restore ------------------------------------------------------------------

    def set_position(self, stage: str, index: int, *, part: str | None = None) -> PositionChange:
        """Move ``stage``'s resume point: items below ``index`` count as done, the rest not.

        Refuses (:class:`ValueError`) an index below 0, beyond the stage's (or part's) total
        when the total is known, or too large to store. A completed stage becomes paused: its
        next run redoes the items from ``index`` on. Takes the stage's writer lock: refused
        (:meth:`running_error`) while a live process writes the stage.
        """
        if not 0 <= index <= MAX_INDEX:
            raise ValueError(
                f"index {index} cannot be stored: use 0 to {MAX_INDEX}"
                if index > MAX_INDEX
                else f"index must be >= 0, got {index}"
            )
        checkpoint = self.require(stage)
        state = checkpoint.state
        if part is None:
            total = state.progress.total_items
            before = state.completion.watermark
        else:
            current = state.parts.get(part)
            total = current.total if current is not None and current.total is not None else 0
            before = current.window.watermark if current is not None else 0
        if total and index > total:
            what = f"part {part!r} of stage {stage!r}" if part else f"stage {stage!r}"
            raise ValueError(
                f"index {index} is beyond the {total} items of {what}: use 0 to {total}"
            )
        status = checkpoint.status
        with self._refusing_live(stage):
            checkpoint.set_position(index, part=part)
        snapshots = [e for e in self.store.list_history(stage) if e.reason == f"set-{index}"]
        return PositionChange(
            stage=stage,
            before=before,
            after=index,
            previous_status=status,
            status=checkpoint.status,
            snapshot_id=snapshots[-1].snapshot_id if snapshots else None,
        )

    def restore(self, stage: str, snapshot_id: str) -> RestoreResult:
        """Make a history snapshot ``stage``'s checkpoint again, so the stage resumes from it.

        See :func:`common.restore.restore_snapshot`: refused, changing nothing, when the
        journal bytes or done keys the snapshot counts are gone, when the stage was started
        over after it and has run since, or while a live process writes the stage
        (:meth:`running_error`).
        """
        checkpoint = self._open.pop(stage, None)
        if checkpoint is not None:
            checkpoint.close()
        with self._refusing_live(stage):
            return restore_snapshot(
                self.store,
                stage,
                snapshot_id,
                data_dir=self.checkpoint_dir.parent,
                clock=self._clock,
            )

    def close(self) -> None:
        """Close every checkpoint this manager opened."""
        errors: list[CheckpointError] = []
        for checkpoint in self._open.values():
            try:
                checkpoint.close()
            except CheckpointError as exc:
                errors.append(exc)
        self._open.clear()
        if errors:
            raise errors[0]


def _long_duration(seconds: float | None) -> str:
    text = format_duration(seconds)
    return text.replace(" min", " minutes").replace(" sec", " seconds")
