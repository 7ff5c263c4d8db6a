"""A stage's lifecycle: loading and becoming the writer, start and resume, status changes and
active time, reset.

A :class:`Lifecycle` decides what happens to the checkpoint's state between items: whether a
``start()`` resumes, starts over or is refused (the input, config and output guards run, the
whole input is validated and every journal's file locked before anything on disk is written);
how the status moves (``complete``, ``fail``, ``pause``, leaving a ``with`` block; through
:func:`common.status.transition`, the only writer of a status) and how long the stage has actually run; what a reset forgets and in
which order (the record stops claiming the journals before they are cut). It owns no file: it
drives the stage's :class:`~common.ownership.Ownership` (lock, loads),
:class:`~common.outputs.Outputs` (journals, done keys) and
:class:`~common.save_coordinator.SaveCoordinator` (saves). Moving the position by hand and the
parts are :mod:`common.position`'s.

The checkpoint's state belongs to the facade (``checkpoint.state``, the seed's API); a reload
or a reset replaces it through a :class:`~common.state.StateHolder`.

Threads: everything here runs on the checkpoint's owner thread under the coordinator's
``guard``; ``_run_started`` and ``_active_before`` are the owner's. The saver's timer reads
them only through :meth:`Lifecycle.refresh_progress`, inside a snapshot it takes under the
guard.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import CheckpointError, InputInvalidError
from common.guards import Change, change_reason
from common.hashing import config_hash, file_sha256
from common.history import History
from common.io.faults import fault_point
from common.outputs import OUTPUT_JOURNAL, Outputs
from common.ownership import Ownership
from common.progress import ProgressSnapshot, eta_seconds, format_progress_line, throughput
from common.save_coordinator import SaveCoordinator
from common.state import (
    MAX_RECENT_ERRORS,
    SCHEMA_VERSION,
    CheckpointState,
    ErrorRecord,
    StateHolder,
    utc_iso,
)
from common.status import CheckpointStatus, check_transition, transition
from common.stores.base import CheckpointStore, validate_stage_name

if TYPE_CHECKING:
    from common.stores.factory import StoreSwitch

__all__ = ["RESUME_ADVICE", "Lifecycle"]

logger = logging.getLogger("common.checkpoint")

#: The advice a refused resume ends with (a command line replaces it with its own flags).
RESUME_ADVICE = "Reset the stage, start it fresh, or force the resume"


class Lifecycle:
    """The lifecycle of ``stage``'s checkpoint, whose state ``holder`` keeps."""

    def __init__(
        self,
        holder: StateHolder,
        *,
        store: CheckpointStore,
        stage: str,
        path: Path,
        clock: Callable[[], float],
        owner: Ownership,
        outputs: Outputs,
        saving: SaveCoordinator,
        history: History,
        store_switch: StoreSwitch | None = None,
    ) -> None:
        self._holder = holder
        self._store = store
        self._stage = stage
        self._path = path
        self._clock = clock
        self._owner = owner
        self._outputs = outputs
        self._saving = saving
        self._history = history
        #: The fresh switch from another store the first start that goes ahead makes.
        self._store_switch = store_switch
        self._run_started: float | None = None  # this run's start (None: not running here)
        self._active_before = 0.0  # active seconds before this run
        #: The record loaded said running with no live writer: its process died.
        self.recovered_from_crash = False
        #: The main file was damaged and the backup was loaded.
        self.restored_from_backup = False
        #: The record was written by an older schema and migrated.
        self.migrated = False

    # Loading and becoming the writer -----------------------------------------------------------

    def load(self) -> CheckpointState:
        """Load the stage's record (a new state when there is none); a crashed run recovers."""
        loaded = self._owner.load()
        state = loaded.state
        if loaded.source is None:
            return state
        self.migrated = loaded.migrated
        self.restored_from_backup = loaded.restored_from_backup
        if self.migrated:
            logger.info(
                "Migrated checkpoint %s for %s to schema %d",
                loaded.source,
                self._stage,
                SCHEMA_VERSION,
            )
        if loaded.crashed:
            logger.warning(
                "Detected incomplete checkpoint for %s. Resuming from %d items",
                self._stage,
                state.progress.processed_items,
            )
            transition(state, CheckpointStatus.RECOVERING, stage=self._stage)
            state.recoveries += 1
            logger.info("Checkpoint status changed: running -> recovering")
            self.recovered_from_crash = True
        self._active_before = state.progress.active_seconds
        return state

    def acquire(self, *, cut: bool = True) -> None:
        """Become the writer now; cut the journals back too unless ``cut=False``."""
        with self._saving.guard:
            self.become_writer()
            if cut:
                self._outputs.cut_back(self._holder.state)

    def become_writer(self) -> None:
        """Take the stage's lock and read the journals' committed lengths (cut them later,
        once a start has passed every guard)."""
        if self._saving.broken is not None:
            raise self._saving.broken
        if not self._owner.acquire():
            return  # already the writer
        try:
            # Another process may have saved since our load, or the process that held the
            # lock when we loaded "running" has died since: load again (crash detection).
            holder = self._holder
            if self._owner.changed_since_load() or holder.state.status is CheckpointStatus.RUNNING:
                holder.state = self.load()
            self._outputs.adopt(holder.state)
        except BaseException:
            self._owner.release()
            raise

    def _validate_input(
        self, validator: Callable[[Path], object] | None, input_file: Path | str | None
    ) -> None:
        """Read the whole input with ``validator`` before anything is cut or reset."""
        if validator is None or input_file is None:
            return
        try:
            validator(Path(input_file))
        except (ValueError, OSError) as exc:
            raise InputInvalidError(
                f"stage {self._stage!r}: {exc}; nothing was changed",
                stage=self._stage,
                path=input_file,
            ) from None

    # Start ---------------------------------------------------------------------------------------

    def start(
        self,
        stage: str | None,
        total_items: int | None,
        input_file: Path | str | None,
        *,
        config: Mapping[str, Any] | None,
        output_file: Path | str | None,
        force: bool,
        fresh: bool,
        input_hash: str | None,
        input_size: int | None,
        input_validator: Callable[[Path], object] | None,
    ) -> bool:
        """:meth:`common.checkpoint.EnhancedCheckpoint.start`."""
        with self._saving.guard:
            if stage is not None and stage != self._stage:
                validate_stage_name(stage)
                raise CheckpointError(
                    f"checkpoint {self._path} belongs to stage {self._stage!r}, not {stage!r}",
                    stage=self._stage,
                    path=self._path,
                )
            if total_items is not None and total_items < 0:
                raise ValueError(f"total_items must be >= 0, got {total_items}")
            self.become_writer()
            now = self._clock()
            new_config_hash = config_hash(config) if config is not None else None
            if input_file is not None and input_hash is None:
                try:
                    input_hash = file_sha256(input_file)
                except FileNotFoundError:
                    raise CheckpointError(
                        f"stage {self._stage!r}: input file {input_file} does not exist",
                        stage=self._stage,
                        path=input_file,
                    ) from None
            state = self._holder.state

            # Every refusal first (guards, input validation, another stage's output, a
            # journal another process writes), then the writes: a refused start leaves the
            # record, its backup, the history and every output exactly as they were.
            start_over: str | None = None
            if fresh and state.status is not CheckpointStatus.INITIALIZED:
                self._validate_input(input_validator, input_file)
                start_over = "fresh start requested"
            elif state.status is CheckpointStatus.COMPLETED:
                change = self._change_to_restart(
                    input_file, input_hash, new_config_hash, input_validator
                )
                if change is None:
                    self._outputs.refuse_another_completed_output(self._holder.state, output_file)
                    logger.info("Stage %s already completed; nothing to do", self._stage)
                    return False
                start_over = str(change)
            elif state.status is not CheckpointStatus.INITIALIZED:
                change = change_reason(state, input_file, input_hash, new_config_hash)
                if change is not None and not force:
                    raise change.error(
                        f"cannot resume stage {self._stage!r}: {change}. {RESUME_ADVICE}",
                        stage=self._stage,
                        path=self._path,
                    )
                if change is not None:
                    logger.warning("Resuming %s although %s (forced)", self._stage, change)
            else:
                self._validate_input(input_validator, input_file)
            if output_file is not None and OUTPUT_JOURNAL not in self._outputs.journals:
                # An output the caller writes itself, or attaches once started (attach_output()
                # before the start has cut_back() check its own).
                self._outputs.refuse_foreign_output(Path(output_file), fresh=fresh)
            # Every guard passed: files may change. Both claim every journal before they
            # write, so another process's lock still refuses the start with nothing changed.
            self._make_store_switch()
            if start_over is not None:
                self._start_over(start_over, fresh)
                state = self._holder.state
            self._outputs.cut_back(self._holder.state, fresh=fresh)

            resuming = state.status is not CheckpointStatus.INITIALIZED
            check_transition(state.status, CheckpointStatus.RUNNING, stage=self._stage)
            if resuming and state.last_processed_index is None:
                # Work marked done out of order (a Scrapy crawl's requests) has no position to
                # resume from: the caller says what it resumes, in its own terms.
                logger.debug(
                    "Resuming %s: first unfinished index %d, %d done beyond it",
                    self._stage,
                    state.completion.watermark,
                    state.completion.in_flight_gap,
                )
            elif resuming:
                logger.info(
                    "Resuming from last processed index: %s (first unfinished index %d, %d done "
                    "beyond it)",
                    state.last_processed_index,
                    state.completion.watermark,
                    state.completion.in_flight_gap,
                )
                logger.info("Skipping already processed items...")
            else:
                state.progress.start_time = now
                state.created_at = state.created_at or utc_iso(now)
            if input_file is not None:
                state.input_file = os.path.abspath(input_file)
                state.input_file_hash = input_hash
                state.input_file_size = (
                    input_size if input_size is not None else Path(input_file).stat().st_size
                )
            if new_config_hash is not None:
                state.config_hash = new_config_hash
            if output_file is not None:
                state.output_file = os.path.abspath(output_file)
            elif OUTPUT_JOURNAL in self._outputs.journals:  # kept over a fresh start's reset
                state.output_file = os.path.abspath(self._outputs.journals[OUTPUT_JOURNAL].path)
            if total_items is not None:
                state.progress.total_items = total_items
            transition(state, CheckpointStatus.RUNNING, stage=self._stage)
            state.run_count += 1
            state.error_message = None
            self._run_started = now
            self._active_before = state.progress.active_seconds
            self._saving.dirty = True
            if resuming:
                logger.info("Processing resumed")
            self._saving.submit(history_reason="start")
            return True

    def restart_if_changed(
        self,
        input_file: Path | str | None,
        *,
        config: Mapping[str, Any] | None,
        input_hash: str | None,
        input_validator: Callable[[Path], object] | None,
    ) -> bool:
        """:meth:`common.checkpoint.EnhancedCheckpoint.restart_if_changed`."""
        with self._saving.guard:
            if self._holder.state.status is not CheckpointStatus.COMPLETED:
                return False
            self.become_writer()
            if input_file is not None and input_hash is None:
                input_hash = file_sha256(input_file)
            new_config_hash = config_hash(config) if config is not None else None
            return self._restart_if_changed(
                input_file, input_hash, new_config_hash, input_validator
            )

    def prepare_start(
        self,
        input_file: Path | str | None,
        *,
        config: Mapping[str, Any] | None,
        input_hash: str | None,
        force: bool,
        input_validator: Callable[[Path], object] | None,
        fresh: bool = False,
    ) -> None:
        """:meth:`common.checkpoint.EnhancedCheckpoint.prepare_start`."""
        with self._saving.guard:
            self.become_writer()
            state = self._holder.state
            if state.status is CheckpointStatus.COMPLETED:
                if not self.restart_if_changed(
                    input_file,
                    config=config,
                    input_hash=input_hash,
                    input_validator=input_validator,
                ):
                    return
            elif state.status is CheckpointStatus.INITIALIZED:
                self._validate_input(input_validator, input_file)
            elif not force:
                if input_file is not None and input_hash is None:
                    input_hash = file_sha256(input_file)
                new_config_hash = config_hash(config) if config is not None else None
                if change_reason(state, input_file, input_hash, new_config_hash) is not None:
                    return
            self._make_store_switch()
            self._outputs.cut_back(self._holder.state, fresh=fresh)

    def _make_store_switch(self) -> None:
        """Remove the other store's checkpoints (``store_switch``) now that a start goes ahead:
        after every guard, before the first write (the journals are not claimed yet, so the
        switch's claim of the outputs is not refused by our own)."""
        switch = self._store_switch
        if switch is None:
            return
        switch.make(held={self._stage: self._owner.lock})  # ours: the same lock file
        fault_point("after_store_switch")
        self._store_switch = None
        self._outputs.drop_vanished_keys_journal(self._holder.state)

    def _change_to_restart(
        self,
        input_file: Path | str | None,
        input_hash: str | None,
        new_config_hash: str | None,
        input_validator: Callable[[Path], object] | None,
    ) -> Change | None:
        """Why a completed stage starts over (its new input validated), or None. Writes
        nothing."""
        change = change_reason(self._holder.state, input_file, input_hash, new_config_hash)
        if change is not None:
            self._validate_input(input_validator, input_file)
        return change

    def _start_over(self, reason: str, fresh: bool) -> None:
        if not fresh:
            logger.warning(
                "Stage %s completed before, but %s: starting it again", self._stage, reason
            )
        self._reset_in_memory(reason)

    def _restart_if_changed(
        self,
        input_file: Path | str | None,
        input_hash: str | None,
        new_config_hash: str | None,
        input_validator: Callable[[Path], object] | None = None,
    ) -> bool:
        change = self._change_to_restart(input_file, input_hash, new_config_hash, input_validator)
        if change is None:
            return False
        self._start_over(str(change), fresh=False)
        return True

    # Status and active time ------------------------------------------------------------------

    def record_error(self, error: BaseException | str) -> None:
        """Count an error and keep its message and time, without changing the status."""
        with self._saving.guard:
            message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            stamp = utc_iso(self._clock())
            state = self._holder.state
            state.error_message = message
            state.error_count += 1
            state.last_error_time = stamp
            state.recent_errors.append(ErrorRecord(stamp, message))
            del state.recent_errors[:-MAX_RECENT_ERRORS]
            self._saving.dirty = True

    def set_status(self, new: CheckpointStatus, reason: str) -> None:
        """Move the status to ``new`` (checked); the next save carries it into the history."""
        with self._saving.guard:
            self.become_writer()
            state = self._holder.state
            old = state.status
            check_transition(old, new, stage=self._stage)
            if old is CheckpointStatus.RUNNING and self._run_started is not None:
                self._accumulate_active_time()
            transition(state, new, stage=self._stage)
            self._saving.dirty = True
            self._history.status_changed(reason if old is not new else None)

    def _finish_save(self, wait: bool) -> None:
        """Save the status change just made (waiting for the disk when ``wait``)."""
        self._saving.submit(history_reason=self._history.take_pending())
        if wait:
            self._saving.flush()

    def complete(self, wait: bool) -> None:
        """:meth:`common.checkpoint.EnhancedCheckpoint.complete`."""
        self._saving.raise_if_broken()
        self.set_status(CheckpointStatus.COMPLETED, "complete")
        self._holder.state.progress.estimated_completion_time = 0.0
        self._finish_save(wait)
        logger.info("Stage %s completed: %s", self._stage, self.progress_line())

    def fail(self, error: BaseException | str, wait: bool) -> None:
        """:meth:`common.checkpoint.EnhancedCheckpoint.fail`."""
        self._saving.raise_if_broken()
        self.record_error(error)
        self.set_status(CheckpointStatus.FAILED, "fail")
        state = self._holder.state
        logger.error("Checkpoint %s failed: %s", self._stage, state.error_message)
        logger.error("Error count: %d", state.error_count)
        logger.error("Last error time: %s", state.last_error_time)
        self._finish_save(wait)

    def pause(self, wait: bool) -> None:
        """:meth:`common.checkpoint.EnhancedCheckpoint.pause`."""
        self._saving.raise_if_broken()
        self.set_status(CheckpointStatus.PAUSED, "pause")
        self._finish_save(wait)
        logger.info("Stage %s paused: %s", self._stage, self.progress_line())

    def leave(self, exc: BaseException | None) -> None:
        """Leave a ``with`` block: a running stage is paused (or failed, on an exception);
        a broken save is recorded on disk instead. Completion is never guessed."""
        if self._saving.broken is not None:
            self._saving.record_failure_on_disk()
        elif self._holder.state.status is CheckpointStatus.RUNNING:
            if exc is None or isinstance(exc, KeyboardInterrupt | SystemExit):
                self.pause(wait=False)
            else:
                self.fail(exc, wait=False)

    def refresh_progress(self, state: CheckpointState, now: float) -> None:
        """The active time and the ETA of a running stage as of ``now`` (for a snapshot)."""
        progress = state.progress
        if self._run_started is not None and state.status is CheckpointStatus.RUNNING:
            progress.active_seconds = self._active_before + max(0.0, now - self._run_started)
            rate = throughput(progress.processed_items, progress.active_seconds)
            progress.estimated_completion_time = eta_seconds(
                progress.processed_items, progress.total_items, rate
            )

    def active_seconds(self) -> float:
        """How long the stage has been running, over all its runs, as of now."""
        active = self._active_before
        if self._run_started is not None and self._holder.state.status is CheckpointStatus.RUNNING:
            active += max(0.0, self._clock() - self._run_started)
        elif not active:
            active = self._holder.state.progress.active_seconds
        return active

    def progress_snapshot(self) -> ProgressSnapshot:
        """Counts and derived figures (throughput, ETA) as of now."""
        return self._holder.state.progress.snapshot(self.active_seconds())

    def progress_line(self) -> str:
        """The seed's progress line for this stage."""
        return format_progress_line(self.progress_snapshot())

    def _accumulate_active_time(self) -> None:
        now = self._clock()
        if self._run_started is not None:
            self._active_before += max(0.0, now - self._run_started)
            self._run_started = now
        self._holder.state.progress.active_seconds = self._active_before

    # Reset -------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all progress (a snapshot of the old state stays in the history)."""
        self.become_writer()
        self._saving.flush()
        self._reset_in_memory("reset")
        self._store.delete(self._stage)
        # The delete took the keys journal's file: kept attached, the keys were appended to
        # the removed file while the new record counted them, and the next run was refused.
        self._outputs.drop_vanished_keys_journal(self._holder.state)
        self._saving.submit(history_reason=None)
        self._saving.flush()

    def _reset_in_memory(self, reason: str) -> None:
        with self._saving.guard:
            holder = self._holder
            old = holder.state
            check_transition(
                old.status, CheckpointStatus.INITIALIZED, stage=self._stage, by="reset"
            )
            self._outputs.claim()  # refused while another process writes one: nothing written
            if old.status is not CheckpointStatus.INITIALIZED:
                self._history.record(old.to_dict(), f"before-{reason}", self._clock())
            now = self._clock()
            holder.state = CheckpointState(
                stage=self._stage, created_at=utc_iso(now), updated_at=utc_iso(now), metadata={}
            )
            self._active_before = 0.0
            self._run_started = None

            def commit_empty_record() -> None:
                self._saving.flush()
                self._store.save(self._stage, holder.state.to_dict())
                fault_point("after_reset_record", self._path)

            self._outputs.reset(old, commit_empty_record)
            self._saving.dirty = True
