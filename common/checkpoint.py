"""``EnhancedCheckpoint``: one stage's progress, its exact resume state and its persistence.

A checkpoint lives in memory on the thread that does the work; every change is a few attribute
updates. Saves are taken as a snapshot on that thread and written by one background saver
thread, so neither a Scrapy reactor nor an asyncio/trio loop ever waits on the disk. Saves are
coalesced: at most one is in flight, and the next one always carries the newest state.

Usage (seed 003)::

    checkpoint = EnhancedCheckpoint("data/checkpoints/stage2.json", auto_save_interval=50)
    checkpoint.start("stage2", total_items=1000, input_file="data/input.jsonl")
    for i, item in enumerate(items):
        if checkpoint.should_skip(i):
            continue
        ...
        checkpoint.update(processed=1, successful=1, last_item=item.url, index=i)
    checkpoint.complete()

The class is a facade; its collaborators each have one job: :mod:`common.saver` (when to
save: policy, state machine, saver thread and timer), :mod:`common.save_coordinator` (taking
the snapshots, applying the results, a failed save), :mod:`common.persist` (what a save
writes, and writing it), :mod:`common.guards` (input and config guards, pure functions),
:mod:`common.status` (the status machine, the only writer of a status), :mod:`common.ownership`
(the writer lock, and loading the record with crash detection), :mod:`common.history` (when a
save also keeps a history snapshot; writing and pruning them), :mod:`common.outputs` (the
journals and the done keys, kept true to the record), :mod:`common.lifecycle` (load, start
and resume, status and active time, reset), :mod:`common.position` (the position moved by
hand, the parts), :mod:`common.journal` (one append-only output) and :mod:`common.completion`
(the exact resume index).

Threads: the facade's own fields (``state`` and everything in it, the progress-log count)
belong to the owner thread, the one doing the work. Each collaborator's docstring says which
thread writes its fields: :mod:`common.save_coordinator` (the counters of unsaved work, the
saver thread's last record, the timer's handshake with :meth:`EnhancedCheckpoint.update`, which
takes no lock), :mod:`common.outputs` (journals and done keys: the owner's),
:mod:`common.lifecycle` (active time: the owner's) and :mod:`common.saver` (the state machine,
under its own short lock from either thread). ``tests/test_engine_threads.py`` checks them.

Why this file is ~700 lines and not ~500: the hot path stays here (``update()`` with its
progress-line countdown, ``should_skip()``, ``mark_done()``: ~170 lines, reading the state and
the journals directly), and the public API is ~50 methods and properties, each a signature, a
docstring and a line or two of delegation (~340 lines); construction wires the collaborators
(~85). Everything else is theirs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from common import guards
from common.completion import PartProgress
from common.errors import InvalidTransitionError
from common.history import History
from common.itemargs import (
    UpdateArguments,
    check_update_arguments,
    counts_not_integers,
    inconsistent_counts,
    item_attempts,
    item_index,
    item_text,
    negative_index,
)
from common.journal import Journal
from common.ledger import Ledger
from common.lifecycle import Lifecycle
from common.outputs import FAILED_JOURNAL, OUTPUT_JOURNAL, Outputs
from common.ownership import Ownership
from common.position import Position
from common.progress import ProgressSnapshot
from common.save_coordinator import SaveCoordinator
from common.saver import SavePolicy, SaverState
from common.state import CheckpointState
from common.status import CheckpointStatus
from common.stores.base import CheckpointStore, validate_stage_name
from common.stores.factory import StoreSwitch, open_store

__all__ = ["EnhancedCheckpoint"]

# update() keeps the saver's timer out with two flags instead of a lock (see update()): that
# handshake needs the GIL's ordering. A free-threaded CPython runs it only with the GIL on.
if not getattr(sys, "_is_gil_enabled", lambda: True)():
    raise ImportError(
        "common.checkpoint needs the GIL: on a free-threaded CPython run with PYTHON_GIL=1"
    )

_RUNNING = CheckpointStatus.RUNNING
_NEVER = 1 << 62  # more items than any stage processes: "no progress line"

logger = logging.getLogger("common.checkpoint")


class EnhancedCheckpoint:
    """One stage's checkpoint with atomic saves, crash recovery and exact resume.

    Args:
        path: the stage's JSON file (``<dir>/<stage>.json``). With ``store`` given, ``path`` may
            be just the stage name.
        auto_save_interval: save after this many updates (at most one save in flight; while one
            is being written, updates go on and the next save carries all of them).
        save_every_seconds: unsaved work reaches the disk at the latest this long after the
            last save, whether updates continue or not (the saver's timer sees to it).
        min_save_interval: but auto-save at most this often (seconds): more saves per second
            than this buy no durability and cost the loop snapshots and GIL time. A save due
            sooner is taken by the saver's timer when the interval has passed, with no further
            call. See :class:`common.saver.SavePolicy` (validated: ``0 <= min_save_interval
            <= save_every_seconds``).
        clock: wall clock in epoch seconds; inject one to test progress maths without waiting.
        store: where records live: a :class:`CheckpointStore`, or a name for
            :func:`common.stores.open_store` (``"json"``, ``"sqlite"``) opened on ``path``'s
            directory (and closed with the checkpoint); JSON files there by default.
        worker_id: names this process in the per-item ledger, when the store keeps one
            (:mod:`common.ledger`; default ``<host>-<pid>``).
        ledger: record that ledger (on by default when the store keeps one; off saves its
            rows' cost when only the done keys matter).
        history_keep: timestamped snapshots kept per stage (taken on start, pause, completion,
            failure, reset and manual position changes).
        history_every_seconds: also snapshot a running stage this often, so its throughput over
            time can be charted (``report --html``).
        progress_log_every: log the seed's progress line every N processed items (0: never).
        store_switch: the fresh switch from another store that
            :func:`common.stores.factory.select_store` chose: the first start (or
            :meth:`prepare_start`) that passes every guard removes the other store's
            checkpoints before it writes anything, so a refused start removes nothing.
    """

    #: The stage's state in memory: counts, resume index, metadata (seed 003's
    #: ``checkpoint.state.metadata``). Replaced on a reload and on a reset.
    state: CheckpointState
    _life: Lifecycle

    def __init__(
        self,
        path: Path | str,
        auto_save_interval: int = 10,
        *,
        save_every_seconds: float = 5.0,
        min_save_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
        store: CheckpointStore | str | None = None,
        history_keep: int = 50,
        history_every_seconds: float = 60.0,
        progress_log_every: int = 100,
        worker_id: str | None = None,
        ledger: bool = True,
        store_switch: StoreSwitch | None = None,
    ) -> None:
        #: When saves happen (frozen: validated once, read on every update).
        self.policy = SavePolicy(auto_save_interval, save_every_seconds, min_save_interval)
        path = Path(path)
        if not isinstance(store, CheckpointStore) and path.is_dir():
            # Taken as a stage named after the directory, it made DIR.json beside it.
            raise ValueError(
                f"EnhancedCheckpoint takes one stage's checkpoint file, DIR/<stage>.json, not a "
                f"directory: {path} is one (pass {path / '<stage>.json'}; "
                f"AsyncCheckpointTracker and UnifiedCheckpointManager take the directory)"
            )
        # With a store, ``path`` is the stage name itself: no directory part to drop.
        stage = str(path) if isinstance(store, CheckpointStore) else path.name
        self.stage = validate_stage_name(stage.removesuffix(".json"))
        self._owns_store = not isinstance(store, CheckpointStore)
        self.store: CheckpointStore = (
            store if isinstance(store, CheckpointStore) else open_store(store, path.parent)
        )
        self.path = Path(self.store.describe(self.stage))
        #: The per-item ledger (seed 004) when the store keeps one, else None.
        self.ledger: Ledger | None = (
            Ledger(self.store, self.stage, *([worker_id] if worker_id else []))
            if ledger and Ledger.available(self.store)
            else None
        )
        #: When a save also keeps a history snapshot; writing and pruning them.
        self._history = History(
            self.store,
            self.stage,
            keep=history_keep,
            every_seconds=history_every_seconds,
            now=clock(),
        )
        self._clock = clock
        #: The stage's writer lock and its record's loads (crash detection).
        self._owner = Ownership(self.store, self.stage, clock)
        #: The journals and the done keys (common/outputs.py).
        self._outputs = Outputs(self.store, self.stage, self.path, self._owner, self.ledger)
        self._progress_log_every = 0
        self._log_left = _NEVER  # processed items until update() logs the progress line
        self.progress_log_every = progress_log_every
        #: Taking saves and applying their results; its ``guard`` is the checkpoint's lock.
        self._saving = SaveCoordinator(
            self.policy,
            store=self.store,
            stage=self.stage,
            path=self.path,
            clock=clock,
            outputs=self._outputs,
            history=self._history,
            state=lambda: self.state,
            # Late-bound: the lifecycle, built next, drives this coordinator.
            become_writer=lambda: self._life.become_writer(),
            refresh_progress=lambda state, now: self._life.refresh_progress(state, now),
        )
        #: Load, start, status, reset, position, parts (common/lifecycle.py).
        self._life = Lifecycle(
            self,
            store=self.store,
            stage=self.stage,
            path=self.path,
            clock=clock,
            owner=self._owner,
            outputs=self._outputs,
            saving=self._saving,
            history=self._history,
            store_switch=store_switch,
        )
        #: Moving the position by hand, and the parts (common/position.py).
        self._position = Position(
            self,
            stage=self.stage,
            path=self.path,
            clock=clock,
            outputs=self._outputs,
            saving=self._saving,
            become_writer=self._life.become_writer,
        )
        self.state = self._life.load()

    # Lifecycle -------------------------------------------------------------------------------

    @property
    def is_locked_elsewhere(self) -> bool:
        """True when another live process (or object) is writing this stage."""
        return self._owner.is_held_elsewhere()

    def acquire(self, *, cut: bool = True) -> None:
        """Become the stage's only writer now (otherwise done by the first change).

        Takes the lock (raising :class:`CheckpointLockedError` if another process holds it),
        reloads if the file changed meanwhile, and cuts attached journals back to their
        committed length (``cut=False``: not yet; :meth:`start` cuts once its guards have
        passed, so a refused start changes nothing). Blocking I/O: from async code call it in
        a worker thread.
        """
        self._life.acquire(cut=cut)

    def start(
        self,
        stage: str | None = None,
        total_items: int | None = None,
        input_file: Path | str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        output_file: Path | str | None = None,
        force: bool = False,
        fresh: bool = False,
        input_hash: str | None = None,
        input_size: int | None = None,
        input_validator: Callable[[Path], object] | None = None,
    ) -> bool:
        """Start the stage, or resume it from where it stopped.

        Returns True when there is work to do, False when the stage had already completed on
        the same input and configuration (it is left completed; pass ``fresh=True`` to redo it).

        Resuming over a changed input file or configuration raises :class:`InputChangedError`
        or :class:`ConfigChangedError` with the reason, unless ``force=True``. A completed stage
        whose input changed is restarted from scratch.

        Nothing on disk changes until every guard has passed: a refused start leaves outputs
        and journals as they were. When the stage starts over (first start, ``fresh``, or a
        changed input or config), ``input_validator(input_file)`` reads the whole input first;
        a ``ValueError`` or ``OSError`` from it (naming ``FILE:LINE``) becomes
        :class:`InputInvalidError` and nothing is truncated.
        """
        return self._life.start(
            stage,
            total_items,
            input_file,
            config=config,
            output_file=output_file,
            force=force,
            fresh=fresh,
            input_hash=input_hash,
            input_size=input_size,
            input_validator=input_validator,
        )

    def restart_if_changed(
        self,
        input_file: Path | str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        input_hash: str | None = None,
        input_validator: Callable[[Path], object] | None = None,
    ) -> bool:
        """Forget a completed stage now if its input or configuration changed; True if it did.

        :meth:`start` does the same, but an integration calling ``start()`` on an event loop
        calls this first in a worker thread: starting over saves and truncates files.
        """
        return self._life.restart_if_changed(
            input_file, config=config, input_hash=input_hash, input_validator=input_validator
        )

    def prepare_start(
        self,
        input_file: Path | str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        input_hash: str | None = None,
        force: bool = False,
        input_validator: Callable[[Path], object] | None = None,
        fresh: bool = False,
    ) -> None:
        """Do now the file work a :meth:`start` with these arguments would do, if it would
        go ahead: start over a completed stage whose input changed, cut the journals back.

        Blocking I/O: an integration whose ``start()`` runs on an event loop calls this first
        in a worker thread. A start that would be refused changes nothing here (its
        ``start()`` then raises).
        """
        self._life.prepare_start(
            input_file,
            config=config,
            input_hash=input_hash,
            force=force,
            input_validator=input_validator,
            fresh=fresh,
        )

    def update(
        self,
        processed: int = 1,
        successful: int = 0,
        failed: int = 0,
        skipped: int = 0,
        last_item: str | None = None,
        index: int | None = None,
        key: str | None = None,
        part: str | None = None,
        record: Any = None,
        failed_record: Any = None,
        attempts: int = 1,
    ) -> bool:
        """Record finished work; returns False (and changes nothing) if it was already done.

        The parameters' order is fixed (it is part of the API): ``processed, successful,
        failed, skipped, last_item, index`` may be passed by position, as may the rest, though
        ``key`` to ``attempts`` read better by keyword. (They were keyword-only until CPython
        3.11 was seen to fill keyword-only defaults from a dictionary on every call: ~35 ns
        of the call, a tenth of what the engine adds per item.)

        ``index`` (a position in the input, or in ``part``) and ``key`` (a URL or id) mark the
        item done exactly. ``record`` goes to the attached output and ``failed_record`` to the
        failed-items sidecar in the same step, so an item's output is committed exactly when
        the item is: keep them in one call (or call with no ``await`` in between).

        With a ledger (:attr:`ledger`), the item's row (``key``, else ``last_item``, else the
        index) is recorded too: ``done``, ``failed`` or ``skipped`` from the counts, the error
        from ``failed_record["error"]``, and ``attempts`` (how many tries it took).

        What is passed is refused at once, before anything changes, when a save or the next
        load could not keep it whole: counts must be integers; ``index`` an integer >= 0
        (what ``operator.index`` accepts, numpy integers and bool included, is converted to
        an int; a float or str is a ``TypeError``); ``key``, ``part`` and ``last_item``
        strings; ``record`` and ``failed_record`` mappings (JSON objects) that JSON can
        encode; ``attempts`` an integer >= 0. Each refusal names the stage and the value and ends "nothing was changed".
        """
        # The hot path of every integration (seed 003 calls it once per item): locals, one
        # branch per optional argument, the common case (the next index in order) without a
        # call into the completion window, one comparison each for the save policy and the
        # progress line, and no lock. The only other thread that touches the state is the
        # saver's timer, and it snapshots under guard only: the owner raises
        # updating, the timer raises timer_snapshotting and backs off if it sees updating;
        # the owner, if it sees the timer's flag, waits for the lock (the snapshot's end).
        # Under the GIL each attribute load and store is atomic and ordered, so one side
        # always sees the other (Dekker's handshake). The lock's enter/exit was a fifth of
        # the call.
        saving = self._saving
        outer = saving.updating
        saving.updating = True
        try:
            if saving.timer_snapshotting:
                with saving.guard:
                    pass
            if saving.broken is not None:
                raise saving.broken
            state = self.state
            if state.status is not _RUNNING:
                self._not_running("update")
            try:
                # `|` refuses a float: a float count would be saved and then refused by the
                # schema at the next load, leaving a stage that cannot resume.
                inconsistent = (processed | successful | failed | skipped) < 0
            except TypeError:
                counts_not_integers(self.stage, processed, successful, failed, skipped)
            if inconsistent or successful + failed > processed + skipped:
                inconsistent_counts(self.stage, processed, successful, failed, skipped)
            if last_item is not None and last_item.__class__ is not str:
                last_item = item_text(self.stage, "update()", "last_item", last_item)
            if part is not None and part.__class__ is not str:
                part = item_text(self.stage, "update()", "part", part)
            if attempts.__class__ is not int or attempts < 0:
                # The ledger refused it only after the item was counted done.
                attempts = item_attempts(self.stage, "update()", attempts)
            if record is not None or failed_record is not None:
                # Encoded before anything changes: a record JSON cannot encode raises here, not
                # after its item was counted done (it would be committed with no output line).
                record_line, failed_line = self._outputs.encode_records(record, failed_record)
            keys = None
            if key is not None:
                if key.__class__ is not str:
                    key = item_text(self.stage, "update()", "key", key)
                keys = (
                    self._outputs.keys
                    if self._outputs.keys is not None
                    else self._outputs.load_keys(state)
                )
                if key in keys:
                    return False
            if index is not None:
                # A float, str or other non-int index would be saved and refused by the
                # schema at the next load (the stage then resumes from its backup, or from 0):
                # an exact int costs this one comparison, anything else is checked out of line.
                if index.__class__ is not int:
                    index = item_index(self.stage, "update()", index)
                if part is None:
                    window = state.completion
                else:
                    if index < 0:  # before state.part() declares a new part
                        negative_index(self.stage, "update()", index)
                    window = state.part(part).window
                if index == window.watermark and not window.above:
                    window.watermark = index + 1
                    if last_item is not None:
                        window.prefix_item = last_item
                elif index < 0:
                    negative_index(self.stage, "update()", index)
                elif not window.mark(index, last_item):
                    return False
                state.last_processed_index = index
            if keys is not None:
                keys.add(key)  # type: ignore[arg-type]
            progress = state.progress
            progress.processed_items += processed
            if successful:
                progress.successful_items += successful
            if failed:
                progress.failed_items += failed
            if skipped:
                progress.skipped_items += skipped
            if last_item is not None:
                state.last_processed_item = last_item
            if record is not None or failed_record is not None:
                journals = self._outputs.journals
                buffered = 0
                if record_line is not None:
                    buffered = journals[OUTPUT_JOURNAL].append_line(record_line)
                if failed_line is not None:
                    buffered = max(buffered, journals[FAILED_JOURNAL].append_line(failed_line))
                if buffered >= saving.max_buffered_bytes:
                    saving.check_save_at = 0.0  # the save policy below takes a save now
            clock = self._clock  # an attribute read and a call: self._clock() is not specialised
            progress.last_update_time = now = clock()
            if self.ledger is not None:
                self.ledger.record_update(
                    key,
                    last_item,
                    index,
                    part,
                    successful,
                    failed,
                    skipped,
                    failed_record,
                    attempts,
                    now,
                )
            saving.dirty = True
            updates = saving.updates_since_save = saving.updates_since_save + 1
            if updates == saving.every_updates or now >= saving.check_save_at:
                saving.update_due(updates, now)
            left = self._log_left = self._log_left - processed
            if left <= 0:
                self._log_progress()
            return True
        finally:
            saving.updating = outer

    def check_update(self, *args: Any, **kwargs: Any) -> UpdateArguments:
        """The arguments of an :meth:`update` made later (a batch's), checked now as
        :meth:`update` checks them, with the same errors: its parameters, and the stage must
        be running. Returns them as :meth:`update` takes them. Changes nothing."""
        if self.state.status is not _RUNNING:
            self._not_running("update")
        checked = check_update_arguments(self.stage, *args, **kwargs)
        if checked["record"] is not None or checked["failed_record"] is not None:
            self._outputs.encode_records(checked["record"], checked["failed_record"])
        return checked

    @property
    def progress_log_every(self) -> int:
        """Log the seed's progress line every this many processed items (0: never); set,
        it counts from the items processed by then."""
        return self._progress_log_every

    @progress_log_every.setter
    def progress_log_every(self, every: int) -> None:
        self._progress_log_every = every
        self._log_left = every if every > 0 else _NEVER

    def _log_progress(self) -> None:
        self._log_left = self._progress_log_every or _NEVER  # the next line, N items on
        if logger.isEnabledFor(logging.INFO):  # the line costs ~5 us to format
            logger.info(self.progress_line())

    def mark_done(self, index: int, *, part: str | None = None, label: str | None = None) -> bool:
        """Mark ``index`` done without touching the counts; False if it already was."""
        if index.__class__ is not int or index < 0:
            index = item_index(self.stage, "mark_done()", index)
        if part is not None and part.__class__ is not str:
            part = item_text(self.stage, "mark_done()", "part", part)
        with self._saving.guard:
            window = self.state.completion if part is None else self.state.part(part).window
            if not window.mark(index, label):
                return False
            self._saving.dirty = True
            return True

    def mark_changed(self) -> None:
        """Note a change made directly to :attr:`state` (``state.metadata``, say): the next
        save (the timer's at the latest, ``save_every_seconds`` on) carries it."""
        with self._saving.guard:
            self._saving.dirty = True

    def update_metadata(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into ``state.metadata``; the next save carries them. Unlike a
        change made directly to the dict, it holds the lock the saver's timer snapshots under."""
        with self._saving.guard:
            self.state.metadata.update(values)
            self._saving.dirty = True

    def _not_running(self, action: str) -> NoReturn:
        status = self.state.status
        if status is CheckpointStatus.COMPLETED:
            hint = (
                ": the stage completed before, so start() returned False (check it and skip the "
                "work); start(fresh=True) (AsyncCheckpointTracker(..., fresh=True), or "
                "checkpoint-manager reset) runs it again"
            )
        else:
            hint = " (call start() first)"
        raise InvalidTransitionError(
            f"stage {self.stage!r}: cannot {action} while {status.value}{hint}",
            stage=self.stage,
            path=self.path,
        )

    def should_skip(self, index: int, part: str | None = None) -> bool:
        """True when item ``index`` (of ``part``) is already done; exact under any order.

        A non-integer ``index`` (a float, a str) or a non-str ``part`` is a ``TypeError``
        naming the stage; what ``operator.index`` accepts (numpy integers, bool) is an int.
        """
        if index.__class__ is not int:
            index = item_index(self.stage, "should_skip()", index)
        if part is None:
            window = self.state.completion  # inlined is_done(): one call per item, not two
            return index < window.watermark or index in window.above
        if part.__class__ is not str:
            part = item_text(self.stage, "should_skip()", "part", part)
        progress = self.state.parts.get(part)
        if progress is None:
            return False
        return progress.finished or progress.window.is_done(index)

    def complete(self, *, wait: bool = True) -> None:
        """Mark the stage completed and save (waiting for the disk unless ``wait=False``)."""
        self._life.complete(wait)

    def fail(self, error: BaseException | str, *, wait: bool = True) -> None:
        """Record a fatal error, mark the stage failed and save."""
        self._life.fail(error, wait)

    def pause(self, *, wait: bool = True) -> None:
        """Mark the stage paused (an intended stop) and save."""
        self._life.pause(wait)

    def record_error(self, error: BaseException | str) -> None:
        """Count an error and keep its message and time, without changing the status."""
        self._life.record_error(error)

    # Manual control ----------------------------------------------------------------------------

    def set_position(self, index: int, part: str | None = None) -> None:
        """Move the resume point by hand: items below ``index`` are done, the rest are not.

        Counts are set to match (``processed_items = index``). Recorded in the history.
        Refused (``ValueError``) for a stage resumed by key, and for a position that would
        write records a second time.
        """
        self._position.set_position(index, part)

    def reset(self) -> None:
        """Forget all progress (a snapshot of the old state stays in the history)."""
        self._life.reset()

    # Parts -----------------------------------------------------------------------------------

    def start_part(self, name: str, total: int | None = None) -> PartProgress:
        """Declare a part of the input (a split, shard or file) and its size."""
        return self._position.start_part(name, total)

    def finish_part(self, name: str) -> None:
        """Mark a whole part done: it is skipped whole on resume."""
        self._position.finish_part(name)

    def is_part_finished(self, name: str) -> bool:
        """True when part ``name`` was finished whole."""
        part = self.state.parts.get(name)
        return part is not None and part.finished

    @property
    def parts(self) -> dict[str, PartProgress]:
        """The parts of the input declared so far, by name."""
        return self.state.parts

    # Keys ------------------------------------------------------------------------------------

    def is_key_done(self, key: str) -> bool:
        """True when ``key`` (a URL, an id) was marked done; O(1) in memory, or one indexed
        lookup in a store that keeps the keys itself (SQLite)."""
        return key in self._outputs.load_keys(self.state)

    @property
    def done_keys_count(self) -> int:
        return len(self._outputs.load_keys(self.state))

    # Journals ----------------------------------------------------------------------------------

    def attach_journal(self, name: str, path: Path | str) -> Journal:
        """Attach an append-only JSON Lines file committed with this checkpoint's saves.

        The file is cut back to its committed length (or emptied on a fresh start), so it holds
        exactly the records of items counted as done.
        """
        with self._saving.guard:
            return self._outputs.attach(name, path, self.state)

    def attach_output(self, path: Path | str, *, failed_path: Path | str | None = None) -> Journal:
        """Attach the stage's output file and its ``.failed.jsonl`` sidecar.

        Refused (:class:`~common.errors.OutputConflictError`, nothing changed) when another
        stage of the same checkpoint directory records the same file; while another process
        writes it, cutting it back (in :meth:`start`) raises
        :class:`~common.errors.CheckpointLockedError`. A resume must name the output its
        checkpoint records.
        """
        with self._saving.guard:
            return self._outputs.attach_output(Path(path), failed_path, self.state)

    def journal(self, name: str) -> Journal:
        """The attached journal ``name``."""
        return self._outputs.journals[name]

    # Saving ----------------------------------------------------------------------------------

    def tick(self) -> bool:
        """Save now if unsaved work is older than ``min_save_interval`` and no save is running.

        Never blocks. The saver's own timer already saves a burst of updates followed by a
        quiet spell; an integration may still call this from its own loop (it is cheap).
        """
        return self._saving.tick()

    def set_owner_waker(self, waker: Callable[[], None] | None) -> None:
        """Have the saver's timer ask the owner's thread to save instead of saving itself.

        ``waker`` must be callable from any thread and arrange for :meth:`tick` (or a function
        that calls it) to run soon on the owner's thread, e.g. ``lambda:
        reactor.callFromThread(runtime.tick)``. Needed when snapshot hooks read state that
        only the owner's thread may touch (Scrapy's frontier); without hooks the timer takes
        the snapshot itself, under the checkpoint's lock.
        """
        self._saving.set_owner_waker(waker)

    def add_snapshot_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` on the owner's thread right before each save's snapshot.

        Integrations use it to fold in completions they track lazily (the Scrapy frontier
        marks requests done this way), so every save carries the latest exact state. With a
        hook, the saver's timer saves through :meth:`set_owner_waker` only.
        """
        self._saving.add_snapshot_hook(hook)

    def save(self, force: bool = False) -> bool:
        """Save now if anything changed (always with ``force``) and wait until it is on disk."""
        return self._saving.save(force)

    async def save_async(self, force: bool = False) -> bool:
        """:meth:`save` for async code: the snapshot is taken here, the I/O in a worker thread."""
        return await self._saving.save_async(force)

    def flush(self) -> None:
        """Wait until every submitted save is on disk, and take any save that fell due
        meanwhile (deferred by ``min_save_interval`` or queued behind a running save) now;
        raise if one failed."""
        self._saving.flush()

    async def flush_async(self) -> None:
        """:meth:`flush` without blocking the event loop."""
        await self._saving.flush_async()

    def close(self) -> None:
        """Wait for saves, stop the saver, close the journals and release the stage lock."""
        try:
            self._saving.close()
        finally:
            self._outputs.close()
            self._owner.release()
            if self._owns_store:
                self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave a running stage paused (or failed, on an exception) and close.

        Completion is never guessed: call :meth:`complete` when the work is done.
        """
        try:
            self._life.leave(exc)
        finally:
            self.close()

    # Checks ----------------------------------------------------------------------------------

    def validate_input_file(self, input_file: Path | str) -> tuple[bool, str]:
        """Compare ``input_file`` with the one the checkpoint started on: ``(ok, reason)``."""
        return guards.validate_input_file(self.state, input_file)

    def validate_config(self, config: Mapping[str, Any]) -> tuple[bool, str]:
        """Compare a configuration with the one the checkpoint started with."""
        return guards.validate_config(self.state, config)

    def is_stale(self, max_age_hours: float = 24) -> bool:
        """True when the checkpoint has not been updated for ``max_age_hours``."""
        progress = self.state.progress
        stored_at = (
            None
            if progress.last_update_time or progress.start_time
            else self.store.modified_time(self.stage)
        )
        return guards.is_stale(self.state, self._clock(), max_age_hours, stored_at)

    # Display -----------------------------------------------------------------------------------

    def progress_snapshot(self) -> ProgressSnapshot:
        """Counts and derived figures (throughput, ETA) as of now."""
        return self._life.progress_snapshot()

    def progress_line(self) -> str:
        """The seed's progress line for this stage."""
        return self._life.progress_line()

    @property
    def resume_point(self) -> tuple[int, str | None]:
        """First unfinished index and the label of the last item of the done prefix.

        For a source read in id order, the label is seed 001's ``last_processed_id``.
        """
        window = self.state.completion
        return window.watermark, window.prefix_item

    @property
    def recovered_from_crash(self) -> bool:
        """The record loaded said running and no live process held it: its run crashed."""
        return self._life.recovered_from_crash

    @property
    def restored_from_backup(self) -> bool:
        """The main file was damaged and the backup was loaded."""
        return self._life.restored_from_backup

    @property
    def migrated(self) -> bool:
        """The record was written by an older schema and migrated on load."""
        return self._life.migrated

    @property
    def status(self) -> CheckpointStatus:
        return self.state.status

    @property
    def auto_save_interval(self) -> int:
        return self.policy.every_updates

    @property
    def save_every_seconds(self) -> float:
        return self.policy.every_seconds

    @property
    def min_save_interval(self) -> float:
        return self.policy.min_interval

    @property
    def saver_state(self) -> SaverState:
        """Where the saver's state machine stands (see :mod:`common.saver`)."""
        return self._saving.scheduler.state

    def __repr__(self) -> str:
        return f"<EnhancedCheckpoint {self.stage} {self.state.status.value} {self.path}>"
