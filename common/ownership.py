"""A stage's single writer: its lock, and loading its record with crash detection.

One process (one :class:`~common.checkpoint.EnhancedCheckpoint`) writes a stage at a time: the
store's :class:`~common.stores.base.WriterLock` (an ``fcntl`` lock the kernel drops when its
holder dies) says who. A record that says ``running`` while nobody holds the lock was left by a
process that died: :meth:`Ownership.load` reports that as ``crashed`` and leaves the status to the
lifecycle (:mod:`common.status` is the only writer of a status). The lock is taken lazily, by the
first change, so reading a stage (``checkpoint-manager show``) never takes it.

A change made from outside the engine (a reset, a cleanup, a store switch) holds the locks of the
stages it touches through :func:`writers_held`, and is refused in :func:`live_writer_error`'s words
while a live process writes one of them: that writer's next save would undo the change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointLockedError
from common.state import CheckpointState, parse_checkpoint, utc_iso
from common.status import CheckpointStatus
from common.stores.base import CheckpointStore, WriterLock

__all__ = ["LoadedState", "Ownership", "live_writer_error", "writers_held"]


@dataclass(frozen=True, slots=True)
class LoadedState:
    """A stage's record as loaded: a fresh state when there was none."""

    state: CheckpointState
    #: The record says running and no live process holds the lock: its writer died.
    crashed: bool
    restored_from_backup: bool
    migrated: bool
    #: Where it was read from, for messages (None for a fresh state).
    source: Path | None


class Ownership:
    """The writer lock of ``stage`` in ``store``, and its record's loads."""

    def __init__(self, store: CheckpointStore, stage: str, clock: Callable[[], float]) -> None:
        self._store = store
        self._stage = stage
        self._clock = clock
        self._lock: WriterLock | None = None
        self._loaded_mtime: float | None = None

    @property
    def lock(self) -> WriterLock:
        """The stage's lock (made on first use; not taken)."""
        if self._lock is None:
            self._lock = self._store.lock(self._stage)
        return self._lock

    @property
    def held(self) -> bool:
        """True while this object is the stage's writer."""
        return self.lock.held

    def is_held_elsewhere(self) -> bool:
        """True when another live process (or object) is writing the stage."""
        return self.lock.is_held_elsewhere()

    def load(self) -> LoadedState:
        """Read the stage's record (a new state when there is none), noting when it changed."""
        self._loaded_mtime = self._store.modified_time(self._stage)
        loaded = self._store.load(
            self._stage, lambda data, path: parse_checkpoint(data, path=path, stage=self._stage)
        )
        if loaded is None:
            now = utc_iso(self._clock())
            fresh = CheckpointState(stage=self._stage, created_at=now, updated_at=now)
            return LoadedState(fresh, False, False, False, None)
        state, migrated = loaded.value
        crashed = state.status is CheckpointStatus.RUNNING and not self.is_held_elsewhere()
        return LoadedState(state, crashed, loaded.restored_from_backup, migrated, loaded.source)

    def changed_since_load(self) -> bool:
        """True when the record on disk is not the one last loaded (another writer saved)."""
        return self._store.modified_time(self._stage) != self._loaded_mtime

    def acquire(self) -> bool:
        """Become the writer: True when the lock was taken now, False when already held.

        Raises :class:`~common.errors.CheckpointLockedError` naming the holder when another
        process holds it.
        """
        lock = self.lock
        if lock.held:
            return False
        lock.acquire()
        return True

    def release(self) -> None:
        """Stop being the writer (nothing when the lock was never made)."""
        if self._lock is not None:
            self._lock.release()


def live_writer_error(
    store: CheckpointStore, stage: str, holder_pid: int | None
) -> CheckpointLockedError:
    """The refusal of a change to ``stage`` while a live process (``holder_pid``) writes it."""
    who = f"pid {holder_pid}" if holder_pid else "another process"
    return CheckpointLockedError(
        f"stage {stage} is running ({who}); stop it first (nothing was changed)",
        stage=stage,
        path=store.describe(stage),
        holder_pid=holder_pid,
    )


@contextlib.contextmanager
def writers_held(
    store: CheckpointStore,
    stages: Sequence[str],
    held: MutableMapping[str, WriterLock] | None = None,
) -> Iterator[None]:
    """Hold the writer lock of every stage in ``stages`` for the block (one writer per stage).

    Raises :func:`live_writer_error`, having kept nothing, when a live process writes any of
    them. ``held`` maps the stages whose locks the caller holds already: they are not taken
    twice, and the ones taken here are listed in it for the block.
    """
    held = {} if held is None else held
    taken: list[str] = []
    try:
        for name in stages:
            if name in held:
                continue
            lock = store.lock(name)
            try:
                lock.acquire()
            except CheckpointLockedError as exc:
                raise live_writer_error(store, name, exc.holder_pid) from None
            held[name] = lock
            taken.append(name)
        yield
    finally:
        for name in reversed(taken):
            held.pop(name).release()
