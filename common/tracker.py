"""``AsyncCheckpointTracker``: the checkpoint engine around any async loop (anyio).

::

    async with AsyncCheckpointTracker(checkpoint_dir, "my_stage") as tracker:
        tracker.start(total_items=len(items))
        for i, item in enumerate(items):
            if tracker.should_skip(i):
                continue
            result = await process_item(item)
            tracker.update(processed=1, successful=1, last_item=item.url, index=i)
            if i % 100 == 0:
                tracker.print_progress()

The exit decides the status: a normal exit completes the stage, an exception fails it (the
error is recorded and re-raised), cancellation, Ctrl-C and (with ``handle_signals``) SIGTERM
pause it. There is a final save in every case. Loading, hashing, locking and every save run in
worker threads, so the event loop never waits on the disk. Works under asyncio and trio.
"""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, overload

import anyio
import anyio.abc
import anyio.to_thread

from common.checkpoint import EnhancedCheckpoint
from common.errors import CheckpointError
from common.hashing import file_sha256
from common.journal import Journal
from common.ledger import Ledger
from common.progress import ProgressSnapshot
from common.status import CheckpointStatus
from common.stores.base import CheckpointStore, validate_stage_name
from common.stores.factory import StoreSwitch

__all__ = ["AsyncCheckpointTracker", "Batch"]

logger = logging.getLogger("common.tracker")


@dataclass
class Batch:
    """Updates held back until the whole batch succeeds (seed 001's batch commit).

    ``check`` (the tracker passes its checkpoint's :meth:`EnhancedCheckpoint.check_update`)
    refuses each update's arguments at the call, so a bad one raises on its own line inside
    the ``with`` block, and the batch then records nothing; none can be refused while the
    batch is applied, half of it recorded.
    """

    batch_id: int
    _updates: list[Mapping[str, Any]] = field(default_factory=list)
    check: Callable[..., Mapping[str, Any]] | None = None

    def update(self, **kwargs: Any) -> None:
        """Same arguments as :meth:`AsyncCheckpointTracker.update`, checked now (the same
        ``TypeError``/``ValueError`` naming the stage and the value); applied on success only."""
        self._updates.append(kwargs if self.check is None else self.check(**kwargs))

    def __len__(self) -> int:
        return len(self._updates)

    def apply(self, checkpoint: EnhancedCheckpoint) -> None:
        """Record every update of the batch in ``checkpoint`` and stamp its batch id."""
        for kwargs in self._updates:
            checkpoint.update(**kwargs)
        checkpoint.state.batch_id = self.batch_id


class _EngineMethod:
    """A per-item call of the tracker: once the tracker is entered, the engine's bound method
    itself sits in the tracker's ``__dict__`` (this descriptor defines no ``__set__``, so the
    instance attribute wins and each call costs one dictionary read); before that, reading it
    raises the tracker's "use async with" error."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, tracker: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self, tracker: AsyncCheckpointTracker, owner: type[Any] | None = None
    ) -> Callable[..., bool]: ...

    def __get__(
        self, tracker: AsyncCheckpointTracker | None, owner: type[Any] | None = None
    ) -> Self | Callable[..., bool]:
        if tracker is None:
            return self
        method: Callable[..., bool] = getattr(tracker.checkpoint, self.name)
        return method


class AsyncCheckpointTracker:
    """Checkpointing for an async processing loop.

    Args:
        checkpoint_dir: directory of the stage checkpoints (``<dir>/<stage>.json``).
        stage: the stage name.
        auto_save_interval: save after this many updates (saves are coalesced, never blocking).
        save_every_seconds: and at least this often while updates come in.
        min_save_interval: but at most this often (seconds); see :class:`EnhancedCheckpoint`.
        input_file: the stage's input; its hash guards a resume.
        config: the stage's configuration; its hash guards a resume.
        output_file: a JSON Lines output committed with the checkpoint (exactly once), plus its
            ``.failed.jsonl`` sidecar; pass ``record=`` / ``failed_record=`` to :meth:`update`.
        force: resume even if the input or configuration changed.
        fresh: forget earlier progress and start over.
        handle_signals: turn SIGINT/SIGTERM into a clean pause of the body (it is cancelled,
            the checkpoint saved as paused, and :attr:`stopped_by_signal` set; the ``async
            with`` block then ends normally so the caller can exit with 130/143).
        store: a :class:`CheckpointStore`, or a store name (``"json"``, ``"sqlite"``) opened
            on ``checkpoint_dir``; see :func:`common.stores.open_store`.
        worker_id: this worker's name in the per-item ledger (stores that keep one: SQLite).
            Every update of an item with a key (``key=``, ``last_item`` or the index) records
            its row; :attr:`ledger` answers remaining-work and statistics queries.
        ledger: False to keep no ledger rows even when the store could.
        clock, progress_log_every, store_switch: passed to :class:`EnhancedCheckpoint`.
    """

    def __init__(
        self,
        checkpoint_dir: Path | str,
        stage: str,
        *,
        auto_save_interval: int = 10,
        save_every_seconds: float = 5.0,
        min_save_interval: float = 0.05,
        input_file: Path | str | None = None,
        config: Mapping[str, Any] | None = None,
        output_file: Path | str | None = None,
        force: bool = False,
        fresh: bool = False,
        handle_signals: bool = False,
        store: CheckpointStore | str | None = None,
        clock: Callable[[], float] = time.time,
        progress_log_every: int = 100,
        worker_id: str | None = None,
        ledger: bool = True,
        store_switch: StoreSwitch | None = None,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.stage = validate_stage_name(stage)
        if self.checkpoint_dir.suffix.lower() == ".json" or (
            self.checkpoint_dir.exists() and not self.checkpoint_dir.is_dir()
        ):
            # EnhancedCheckpoint's path given here made a directory named like the file, with
            # the checkpoint inside it, where no command looks for it.
            raise ValueError(
                f"AsyncCheckpointTracker takes the checkpoint directory (it keeps "
                f"DIR/{self.stage}.json there), not a file: {self.checkpoint_dir} (pass "
                f"{self.checkpoint_dir.parent})"
            )
        self.input_file = Path(input_file) if input_file is not None else None
        self.config = config
        self.output_file = Path(output_file) if output_file is not None else None
        self.force = force
        self.fresh = fresh
        self.handle_signals = handle_signals
        self.stopped_by_signal: signal.Signals | None = None
        self._options: dict[str, Any] = {
            "auto_save_interval": auto_save_interval,
            "save_every_seconds": save_every_seconds,
            "min_save_interval": min_save_interval,
            "store": store,
            "clock": clock,
            "progress_log_every": progress_log_every,
            "worker_id": worker_id,
            "ledger": ledger,
            "store_switch": store_switch,
        }
        self._checkpoint: EnhancedCheckpoint | None = None
        self._input_hash: str | None = None
        self._input_size: int | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._helper_scopes: list[anyio.CancelScope] = []
        self._has_work = True
        self._start_refused = False
        self._next_batch_id = 0

    @property
    def checkpoint(self) -> EnhancedCheckpoint:
        if self._checkpoint is None:
            raise RuntimeError("use the tracker inside 'async with' first")
        return self._checkpoint

    @property
    def ledger(self) -> Ledger | None:
        """The stage's per-item ledger when the store keeps one (SQLite), else None."""
        return self.checkpoint.ledger

    async def register_items(self, keys: Iterable[str], *, count: int | None = None) -> int:
        """Register every item of the input in the ledger as ``pending`` (in a worker thread),
        so :meth:`Ledger.remaining` can list what is left; returns how many were new.

        ``keys`` may be a stream read once, in that thread (give its length as ``count``).

        Does nothing (returns 0) when the store keeps no ledger, or when the ledger already
        holds as many items (a resume of the same input, which the input and config hashes
        guard): re-registering a million items would cost seconds at every start.
        """
        ledger = self.checkpoint.ledger
        if ledger is None:
            return 0

        expected = len(keys) if count is None and isinstance(keys, Sized) else count

        def register() -> int:
            assert ledger is not None
            if expected is not None and ledger.count() >= expected:
                return 0
            return ledger.register(keys)

        return await anyio.to_thread.run_sync(register)

    @property
    def output(self) -> Journal | None:
        """The committed output journal when ``output_file`` was given."""
        if self.output_file is None:
            return None
        return self.checkpoint.journal("output")

    # Context -----------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        checkpoint = await anyio.to_thread.run_sync(
            functools.partial(
                EnhancedCheckpoint,
                self.stage
                if isinstance(self._options["store"], CheckpointStore)
                else self.checkpoint_dir / f"{self.stage}.json",
                **self._options,
            )
        )
        self._checkpoint = checkpoint
        self._bind_engine_methods(checkpoint)
        try:
            await anyio.to_thread.run_sync(self._prepare)
        except BaseException:
            await anyio.to_thread.run_sync(checkpoint.close)
            raise
        # The only helper beside the body is the signal watcher: a burst of updates followed
        # by a quiet spell is saved by the engine's own timer. Without it the body runs in no
        # task group, so each of its awaits checks one cancel scope fewer.
        if self.handle_signals:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            await self._task_group.start(self._watch_signals)
        return self

    def _prepare(self) -> None:
        """Worker thread: lock the stage, cut journals back, hash the input."""
        checkpoint = self.checkpoint
        checkpoint.acquire(cut=False)  # start() cuts, once its guards have passed
        if self.output_file is not None:
            # Before a fresh start's reset: another stage's output is refused, and the
            # reset claims the file (another process writing it refuses it) before it writes.
            checkpoint.attach_output(self.output_file)
        if self.fresh and checkpoint.status is not CheckpointStatus.INITIALIZED:
            checkpoint.reset()  # here, in the worker thread: it writes history and truncates
        if self.input_file is not None:
            self._input_hash = file_sha256(self.input_file)
            self._input_size = self.input_file.stat().st_size
        # Starting over (a completed stage whose input or config changed) and cutting the
        # journals back happen here, off the loop, and only if start() will go ahead.
        checkpoint.prepare_start(
            self.input_file,
            config=self.config,
            input_hash=self._input_hash,
            force=self.force,
            fresh=self.fresh,
        )
        if checkpoint.state.keys_done:
            checkpoint.is_key_done("")  # load the done keys off the event loop
        state = checkpoint.state
        self._next_batch_id = state.batch_id + 1 if state.progress.processed_items else 0

    async def _watch_signals(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with (
            anyio.CancelScope() as scope,
            anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        ):
            self._helper_scopes.append(scope)
            task_status.started()
            async for signum in signals:
                self.stopped_by_signal = signal.Signals(signum)
                logger.warning(
                    "Received %s: saving %s and pausing", self.stopped_by_signal.name, self.stage
                )
                assert self._task_group is not None
                self._task_group.cancel_scope.cancel()
                return

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        checkpoint = self.checkpoint
        suppress = False
        try:
            with anyio.CancelScope(shield=True):
                status = checkpoint.status
                if self._start_refused:
                    pass
                elif exc is None and self.stopped_by_signal is None:
                    await self.on_success()
                    if status is CheckpointStatus.RUNNING:
                        checkpoint.complete(wait=False)
                elif self.stopped_by_signal is not None or _is_stop(exc):
                    if status in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING):
                        checkpoint.pause(wait=False)
                else:
                    assert exc is not None
                    await self.on_failure(exc)
                    if status is not CheckpointStatus.COMPLETED:
                        checkpoint.fail(exc, wait=False)
                await checkpoint.flush_async()
        finally:
            try:
                # Leave the helpers' task group outside any scope opened since it was entered
                # (anyio requires scopes to unwind in order).
                if self._task_group is not None:
                    for scope in self._helper_scopes:
                        scope.cancel()
                    group, self._task_group = self._task_group, None
                    try:
                        suppress = bool(await group.__aexit__(exc_type, exc, tb))
                    except BaseException as group_error:
                        # The group re-raises (or wraps) the body's own exception: let the
                        # original propagate from here instead.
                        if not _is_only(group_error, exc):
                            raise
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(checkpoint.close)
        return suppress and self.stopped_by_signal is not None

    async def on_success(self) -> None:
        """Hook: the body finished normally (before the stage is marked completed)."""

    async def on_failure(self, error: BaseException) -> None:
        """Hook: the body raised ``error`` (before the stage is marked failed)."""

    # The seed's interface ------------------------------------------------------------------------

    def start(
        self, total_items: int | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Start or resume the stage; False when it already completed on the same input.

        Nothing blocks: the input was hashed on entry and the save runs in the background.
        """
        try:
            self._has_work = self.checkpoint.start(
                self.stage,
                total_items,
                self.input_file,
                config=self.config,
                output_file=self.output_file,
                force=self.force,
                fresh=self.fresh,
                input_hash=self._input_hash,
                input_size=self._input_size,
            )
        except CheckpointError:
            # A refused start (changed input or config, wrong stage) leaves the checkpoint as
            # it was: the stage did not run, so it did not fail.
            self._start_refused = True
            raise
        if metadata is not None:
            self.checkpoint.update_metadata(metadata)
        return self._has_work

    @property
    def has_work(self) -> bool:
        return self._has_work

    # The per-item calls of a hot loop are the engine's own bound methods, stored on the
    # tracker when it is entered: one dictionary read per call. A forwarding method, or a
    # property returning the bound method, cost 0.1-0.2 us a call, as much as the stand-in's
    # whole bookkeeping (python -m tools.bench tracker). Before the tracker is entered,
    # reading them raises the "use async with" error. A subclass may override them.

    should_skip = _EngineMethod(
        """``should_skip(index, part=None)``: True when item ``index`` is already done (exact,
        whatever the completion order); :meth:`EnhancedCheckpoint.should_skip`."""
    )
    update = _EngineMethod(
        """``update(processed=1, successful=0, failed=0, skipped=0, last_item=None,
        index=None, key=None, part=None, record=None, failed_record=None, attempts=1)``:
        record finished work; never blocks. :meth:`EnhancedCheckpoint.update` of this stage."""
    )

    def _bind_engine_methods(self, checkpoint: EnhancedCheckpoint) -> None:
        for name in ("should_skip", "update"):
            if isinstance(getattr(type(self), name), _EngineMethod):  # not overridden
                vars(self)[name] = getattr(checkpoint, name)

    def is_key_done(self, key: str) -> bool:
        return self.checkpoint.is_key_done(key)

    def record_error(self, error: BaseException | str) -> None:
        """Count a non-fatal error (kept with its time in the checkpoint)."""
        self.checkpoint.record_error(error)

    def print_progress(self) -> str:
        """Print the seed's progress line on standard output and return it.

        Printed, not logged: the seed calls it to show progress from a plain script, where
        logging at INFO goes nowhere until the script configures it.
        """
        line = self.checkpoint.progress_line()
        print(line, flush=True)
        return line

    def progress(self) -> ProgressSnapshot:
        """Counts, success rate, throughput and ETA as of now."""
        return self.checkpoint.progress_snapshot()

    async def save(self) -> None:
        """Save now and wait for it, off the event loop."""
        await self.checkpoint.save_async(force=True)

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Group updates so they count only if the whole block succeeds.

        ::

            with tracker.batch() as batch:
                for i in block:
                    ...
                    batch.update(processed=1, successful=1, index=i, record=row)

        Each ``batch.update()`` checks its arguments at the call, as :meth:`update` does (a
        bad one raises there, naming the stage and the value). On an exception in the block,
        a bad argument's included, nothing of the batch is recorded, not even the updates
        queued before it (the whole batch is redone on resume: seed 001's batch commit), the
        error is counted, and the exception propagates.
        """
        batch = Batch(self._next_batch_id, check=self.checkpoint.check_update)
        self._next_batch_id += 1
        try:
            yield batch
        except BaseException as exc:
            if not _is_stop(exc):
                self.checkpoint.record_error(f"batch {batch.batch_id} failed: {exc}")
            raise
        batch.apply(self.checkpoint)


def _is_only(raised: BaseException, original: BaseException | None) -> bool:
    """True when ``raised`` is ``original`` itself or a group holding only it."""
    if original is None:
        return False
    if raised is original:
        return True
    return isinstance(raised, BaseExceptionGroup) and list(raised.exceptions) == [original]


def _is_stop(exc: BaseException | None) -> bool:
    """Cancellation, Ctrl-C and interpreter exit pause a stage rather than fail it."""
    if exc is None:
        return False
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return True
    try:
        cancelled = anyio.get_cancelled_exc_class()
    except Exception:  # no running event loop (sync contexts)
        return False
    return isinstance(exc, cancelled)
