"""How a checkpoint's saves are taken and their results applied: the owner's side of saving.

:mod:`common.saver` decides *when* (the policy, the state machine, the saver thread and its
timer) and :mod:`common.persist` *what* a save writes; a :class:`SaveCoordinator` joins them to
one checkpoint. It keeps the counters of unsaved work that ``update()`` moves, takes the
snapshot on the owner's thread (snapshot hooks first, then the record, then the outputs' new
bytes and keys), hands it to the saver thread, applies each :class:`~common.persist.SaveResult`
when the owner reaps its saves, and turns a failed save into the checkpoint's permanent error
(recording it on disk, on the saver thread). The saver's timer lands in :meth:`_on_timer`.

Threads and the fields here:

=================  =========================================================================
owner thread       ``dirty``, ``updates_since_save``, ``check_save_at``, ``last_save_time``,
                   ``broken``, ``updating`` (raised by ``update()``), the snapshot hooks;
                   under ``guard`` except from ``update()`` (see :mod:`common.checkpoint`).
                   A snapshot resets the first four: the timer's too, under ``guard`` and
                   never while ``updating`` is raised.
saver thread       ``_last_saved`` (the record of its last completed save, which it marks
                   failed when a save breaks): written only there, from its own results.
saver's timer      ``timer_snapshotting``; snapshots only while holding ``guard`` (never
                   waiting for it), never while the owner is inside ``update()``, and only
                   when no snapshot hook needs the owner's thread; otherwise it asks the owner
                   through the waker (:meth:`set_owner_waker`).
=================  =========================================================================
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from common.errors import CheckpointError, CheckpointSaveError
from common.history import History
from common.outputs import Outputs
from common.persist import SaveResult, Snapshot, failure_record, persist
from common.saver import SavePolicy, SaverState, SaveScheduler
from common.state import CheckpointState, utc_iso
from common.status import CheckpointStatus
from common.stores.base import CheckpointStore

__all__ = ["SaveCoordinator"]

logger = logging.getLogger("common.checkpoint")


class SaveCoordinator:
    """The saves of one stage's checkpoint, as seen from its owner's thread.

    Args:
        policy: when saves are due.
        store, stage, path: where the records go (``path`` names the checkpoint in messages).
        clock: the checkpoint's wall clock.
        outputs: the journals and done keys each snapshot takes its part from.
        history: when a save also keeps a history snapshot.
        state: the checkpoint's current state (it is replaced on a reload or a reset).
        become_writer: makes the checkpoint the stage's writer before a snapshot.
        refresh_progress: brings the state's active time and ETA up to ``now``.
    """

    def __init__(
        self,
        policy: SavePolicy,
        *,
        store: CheckpointStore,
        stage: str,
        path: Path,
        clock: Callable[[], float],
        outputs: Outputs,
        history: History,
        state: Callable[[], CheckpointState],
        become_writer: Callable[[], None],
        refresh_progress: Callable[[CheckpointState, float], None],
    ) -> None:
        self.policy = policy
        self._store = store
        self._stage = stage
        self._path = path
        self._clock = clock
        self._outputs = outputs
        self._history = history
        self._state = state
        self._become_writer = become_writer
        self._refresh_progress = refresh_progress
        #: Guards the state and the collaborators the timer snapshots: held by every change
        #: the owner makes, and by the timer while it takes a snapshot.
        self.guard = threading.RLock()
        # update() takes no lock: these two flags keep the timer's snapshot out of it instead.
        self.updating = False  # owner: inside update() (a hook's nested update restores it)
        self.timer_snapshotting = False  # saver's timer: taking a snapshot
        #: The saver's state machine, thread and saves in flight.
        self.scheduler = SaveScheduler(policy, f"checkpoint-{stage}", self._on_timer)
        self._waker: Callable[[], None] | None = None
        #: The failed save's error, for good: every later save or change raises it.
        self.broken: CheckpointError | None = None
        self._last_saved: dict[str, Any] | None = None  # the record of the last completed save
        self._failure_recorded = False
        #: Unsaved work: updates since the last snapshot, and whether anything changed.
        self.updates_since_save = 0
        self.every_updates = policy.every_updates
        #: ``update()`` asks for a save at once when a journal buffers this much (see
        #: :class:`~common.saver.SavePolicy`).
        self.max_buffered_bytes = policy.max_buffered_bytes
        self.dirty = False
        self.last_save_time = clock()
        #: update() compares the clock with this alone: the end of the period since the last
        #: save, or, once the count fell due, of the minimum interval (see :meth:`update_due`).
        self.check_save_at = self.last_save_time + policy.every_seconds
        self._before_snapshot: list[Callable[[], None]] = []
        self._snapshotting = False

    # Owner thread: asking for saves ----------------------------------------------------------------

    def update_due(self, updates: int, now: float) -> None:
        """``update()``'s save policy, once its count reached ``every_updates`` or its clock
        :attr:`check_save_at`: ask for a save if one is due, else move the threshold."""
        policy = self.policy
        since = now - self.last_save_time
        if self._outputs.buffered_bytes() >= policy.max_buffered_bytes:
            # Memory before spacing: save now, or right after the save being written (until
            # then every update comes back here, as check_save_at stays behind the clock).
            self.check_save_at = 0.0
            self.save_due(now, throttle=False)
        elif updates >= policy.every_updates:
            # Due by count: ask once (a save too soon is deferred to the timer), then again
            # only once the minimum interval has passed.
            self.check_save_at = self.last_save_time + policy.min_interval
            if updates == policy.every_updates or since >= policy.min_interval:
                self.save_due(now)
        elif since >= policy.every_seconds:
            self.save_due(now)
        else:
            self.check_save_at = self.last_save_time + policy.every_seconds

    def save_due(self, now: float, *, throttle: bool = True) -> None:
        """A save fell due on the owner's thread: take it now, or leave it to the saver."""
        if self._snapshotting:
            return  # a snapshot hook updated: the snapshot being taken carries it
        if self.scheduler.due(now - self.last_save_time, throttle=throttle):
            self.reap()
            self.submit()

    def tick(self) -> bool:
        """Save now if unsaved work is older than ``min_save_interval`` and no save is running
        (see :meth:`common.checkpoint.EnhancedCheckpoint.tick`)."""
        with self.guard:
            if (
                self.broken is not None
                or not self.dirty
                or self._state().status is not CheckpointStatus.RUNNING
                or self.scheduler.in_flight
            ):
                return False
            if self._clock() - self.last_save_time < self.policy.min_interval:
                return False
            try:
                self.reap()
                self.submit()
            except CheckpointError:
                return False  # a failed save: the owner hears of it at its next update or save
            return True

    def set_owner_waker(self, waker: Callable[[], None] | None) -> None:
        """Have the timer call ``waker`` (any thread) instead of taking the snapshot itself."""
        self._waker = waker

    def add_snapshot_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` on the owner's thread right before each save's snapshot."""
        self._before_snapshot.append(hook)

    def submit(self, history_reason: str | None = None) -> None:
        """Take a snapshot now and queue its writing on the saver thread."""
        if self.broken is None and self.scheduler.state is SaverState.BROKEN:
            self.reap()
        if self.broken is not None:
            raise self.broken
        with self.guard:
            self._become_writer()
            snapshot = self._snapshot(history_reason)
            self.scheduler.submit(lambda: self._persist(snapshot))

    def save(self, force: bool = False) -> bool:
        """Save now if anything changed (always with ``force``) and wait until it is on disk."""
        if self.broken is not None:
            raise self.broken
        if not (force or self.dirty):
            self.flush()
            return False
        self.submit()
        self.flush()
        return True

    async def save_async(self, force: bool = False) -> bool:
        """:meth:`save` for async code: the snapshot is taken here, the I/O in a worker thread."""
        if self.broken is not None:
            raise self.broken
        if not (force or self.dirty):
            await self.flush_async()
            return False
        self.submit()
        await self.flush_async()
        return True

    def flush(self) -> None:
        """Wait until every submitted save is on disk, and take any save that fell due
        meanwhile now; raise if one failed."""
        saves = self.scheduler
        concurrent.futures.wait(saves.futures)
        self.reap()
        if saves.pending_due:
            self.submit()
            concurrent.futures.wait(saves.futures)
            self.reap()

    async def flush_async(self) -> None:
        """:meth:`flush` without blocking the event loop."""
        saves = self.scheduler
        pending = [f for f in saves.futures if not f.done()]
        if pending:
            await anyio.to_thread.run_sync(concurrent.futures.wait, pending)
        self.reap()
        if saves.pending_due:
            self.submit()
            await anyio.to_thread.run_sync(concurrent.futures.wait, saves.futures)
            self.reap()

    def close(self) -> None:
        """Wait for the saves in flight, then stop the saver thread."""
        try:
            if self.scheduler.futures:
                self.flush()
        finally:
            self.scheduler.stop()

    # Owner thread: results and failures --------------------------------------------------------

    def reap(self) -> None:
        """Apply the results of finished saves; raise (for good) if one failed."""
        try:
            for result in self.scheduler.reap():
                if isinstance(result, SaveResult):
                    result.apply()
        except BaseException as error:
            if self.broken is None:
                self.broken = (
                    error
                    if isinstance(error, CheckpointError)
                    else CheckpointSaveError(
                        f"could not save checkpoint {self._path}: {error}",
                        stage=self._stage,
                        path=self._path,
                    )
                )
        if self.broken is not None:
            raise self.broken

    def raise_if_broken(self) -> None:
        """After a failed save, stop: record the failure on disk (if it lets us) and raise.

        The state in memory is ahead of the disk (its journal bytes may not have been written),
        so it can never be saved; the last record that did reach the disk is marked failed.
        """
        if self.broken is None and self.scheduler.state is SaverState.BROKEN:
            with contextlib.suppress(CheckpointError):
                self.reap()
        if self.broken is None:
            return
        self.record_failure_on_disk()
        raise self.broken

    def record_failure_on_disk(self) -> None:
        """Once a save broke: mark the last saved record failed, on the saver thread."""
        if self._failure_recorded or self.broken is None:
            return
        self._failure_recorded = True
        error = self.broken
        # On the saver thread, after any save still running: the event loop never waits on it.
        self.scheduler.queue(lambda: self._write_failure(error))

    # Snapshot (owner thread, or the timer under the guard) ---------------------------------------

    def _snapshot(self, history_reason: str | None = None) -> Snapshot:
        self._snapshotting = True
        try:
            for hook in self._before_snapshot:
                hook()
        finally:
            self._snapshotting = False
        state = self._state()
        now = self._clock()
        self._refresh_progress(state, now)
        state.updated_at = utc_iso(now)
        # The record first: it is the one step that can fail (a dict changed under the copy),
        # and nothing has been taken from the journals yet.
        record = state.to_dict()
        writes, rows, keys = self._outputs.take_pending(state)
        record["journals"] = dict(state.journals)
        record["keys_done"] = state.keys_done
        self.updates_since_save = 0
        self.last_save_time = now
        self.check_save_at = now + self.policy.every_seconds
        self.dirty = False
        history_reason = self._history.reason_for(now, history_reason)
        return Snapshot(record, writes, history_reason, now, rows=rows, keys=keys)

    # Saver thread ------------------------------------------------------------------------------

    def _persist(self, snapshot: Snapshot) -> SaveResult:
        """Saver thread: write the snapshot; the owner applies the result when it reaps."""
        result = persist(self._store, self._stage, self._path, snapshot, self._history)
        self._last_saved = result.record
        return result

    def _write_failure(self, error: CheckpointError) -> None:
        """Saver thread: mark the last record this run saved as failed, if it was running."""
        failed = failure_record(self._last_saved, error, utc_iso(self._clock()))
        if failed is None:
            return
        try:
            self._store.save(self._stage, failed)
        except (CheckpointError, OSError) as exc:
            logger.error("Could not record the failure of %s on disk either: %s", self._stage, exc)
        else:
            self._last_saved = failed
            logger.error(
                "Stage %s failed: %s; its checkpoint keeps the progress of its last save",
                self._stage,
                error,
            )

    def _on_timer(self) -> None:
        """Saver thread: a deferred save, or ``save_every_seconds`` since the last one."""
        saves = self.scheduler
        # Never wait for the owner here: it may hold the lock while it waits for this thread.
        if not self.guard.acquire(blocking=False):
            saves.arm(0.005)
            return
        self.timer_snapshotting = True
        try:
            if self.updating:
                saves.arm(0.005)  # the owner is mid-update (see update()): come back shortly
                return
            due = saves.timer_fired()
            if (
                due is None
                or not self.dirty
                or self._state().status is not CheckpointStatus.RUNNING
            ):
                return
            if not due:
                wait = self.policy.every_seconds - (self._clock() - self.last_save_time)
                if wait > 0.001:
                    saves.arm(wait)
                    return
            if self._waker is not None:
                self._waker()
            elif not self._before_snapshot:
                try:
                    self.submit()
                except RuntimeError:  # the owner changed a dict (metadata) as we copied it
                    saves.arm(0.005)
                except CheckpointError:
                    pass  # recorded: the owner hears of it at its next call
            # Hooks but no waker: only the owner may run them (its integration ticks).
        finally:
            self.timer_snapshotting = False
            self.guard.release()
