"""When a checkpoint is saved: the save policy, the saver's state machine and its own timer.

A checkpoint's saves are written by one background thread per checkpoint, the *saver*. The
owner (the thread doing the work: a plain loop, an event loop, Scrapy's reactor) takes a
snapshot and hands it over; at most one save is in flight and the next one carries everything
that changed meanwhile.

The owner asks for a save when :attr:`SavePolicy.every_updates` updates have accumulated, or
when :attr:`SavePolicy.every_seconds` have passed since the last save. A save that falls due
less than :attr:`SavePolicy.min_interval` after the previous one, or while one is still being
written, is *deferred*, and the saver's timer (the thread waits on a condition with a
deadline) takes it when its time comes, with no further call from the owner. The same timer
wakes ``every_seconds`` after each save, so unsaved work never waits longer than that even
when updates stop. The owner's hot path only counts and compares; it never signals the thread
except on a deferral.

States (:class:`SaverState`), changed by either thread under the scheduler's own short lock::

    IDLE ──due──▶ SAVING ──written──▶ IDLE
      │             │ ▲
      │ too soon    │ due while writing
      ▼             ▼ │
    DEFERRED ◀── SAVING_DUE        (written: deferred until min_interval has passed)
      └──timer or next update──▶ SAVING

    any ──save failed──▶ BROKEN (every later save or update raises the error)
"""

from __future__ import annotations

import atexit
import concurrent.futures
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["SavePolicy", "SaveScheduler", "SaverState", "SaverThread"]


@dataclass(frozen=True, slots=True)
class SavePolicy:
    """How often a running checkpoint is saved.

    Args:
        every_updates: save after this many updates (seed 003's ``auto_save_interval``).
        every_seconds: unsaved work is saved at the latest this long after the last save,
            whether updates continue or not.
        min_interval: but never two saves closer than this (seconds): more saves per second
            buy no durability and cost the owner snapshots and GIL time. A save that falls due
            sooner is taken by the timer once the interval has passed.
        max_buffered_bytes: except when an output journal buffers this many bytes of records
            not yet saved: then the save is taken at once, so the records held in memory are
            bounded by this and not by how many items finish within ``min_interval``.
    """

    every_updates: int = 10
    every_seconds: float = 5.0
    min_interval: float = 0.05
    max_buffered_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if isinstance(self.every_updates, bool) or self.every_updates < 1:
            raise ValueError(f"auto_save_interval must be >= 1, got {self.every_updates}")
        if not self.every_seconds > 0:
            raise ValueError(f"save_every_seconds must be > 0, got {self.every_seconds}")
        if not self.min_interval >= 0:
            raise ValueError(f"min_save_interval must be >= 0, got {self.min_interval}")
        if self.max_buffered_bytes < 1:
            raise ValueError(f"max_buffered_bytes must be >= 1, got {self.max_buffered_bytes}")
        if self.min_interval > self.every_seconds:
            raise ValueError(
                f"min_save_interval ({self.min_interval}) must not exceed save_every_seconds "
                f"({self.every_seconds})"
            )


class SaverState(Enum):
    """Where the saver stands; see the module docstring for the transitions."""

    IDLE = "idle"  # nothing being written; unsaved work, if any, is not due yet
    DEFERRED = "deferred"  # a save is due but too soon after the last one: the timer is armed
    SAVING = "saving"  # a snapshot is being written
    SAVING_DUE = "saving-due"  # ... and another save fell due meanwhile
    BROKEN = "broken"  # a save failed; nothing more is saved


_live: weakref.WeakSet[SaverThread] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    # A checkpoint never closed still gets its queued saves written before the process ends.
    for saver in list(_live):
        saver.stop()


class SaverThread:
    """One background thread that runs jobs in order and calls ``on_due`` at a deadline.

    Jobs come first: a deadline that passes while a job runs fires after it. The thread is a
    daemon so a forgotten checkpoint cannot keep the process alive; queued jobs are still run
    at interpreter exit.
    """

    def __init__(self, name: str, on_due: Callable[[], None]) -> None:
        self._on_due = on_due
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = deque()
        self._deadline: float | None = None  # time.monotonic()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ident: int | None = None
        self._thread.start()
        _live.add(self)

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the saver thread has stopped")
            self._jobs.append((job, future))
            self._cond.notify()
        return future

    def arm(self, delay: float) -> None:
        """Call ``on_due`` in ``delay`` seconds (or sooner if already armed sooner)."""
        deadline = time.monotonic() + max(0.0, delay)
        with self._cond:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
                self._cond.notify()

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def stop(self) -> None:
        """Run the queued jobs, then end the thread (the timer no longer fires)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        self.ident = threading.get_ident()
        cond = self._cond
        while True:
            with cond:
                while not self._jobs:
                    if self._stopping:
                        return
                    deadline = self._deadline
                    if deadline is None:
                        cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                if self._jobs:
                    job, future = self._jobs.popleft()
                else:
                    self._deadline = None
                    job, future = self._on_due, None
            if future is None:
                job()  # on_due handles its own errors
            elif future.set_running_or_notify_cancel():
                try:
                    result = job()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)


class SaveScheduler:
    """The saver's state machine, its thread and the saves in flight, for one checkpoint.

    The owner asks :meth:`due` when a save falls due and submits it itself when told to (the
    snapshot is the owner's); the saver thread reports each written save to :meth:`written`,
    which moves the state and re-arms the timer; :meth:`reap` hands the owner the results
    of finished saves (and raises the first failure). ``on_timer`` runs on the saver thread.
    """

    def __init__(self, policy: SavePolicy, name: str, on_timer: Callable[[], None]) -> None:
        self.policy = policy
        self._name = name
        self._on_timer = on_timer
        self._lock = threading.Lock()  # short sections only; never held while waiting
        self.state = SaverState.IDLE
        self.in_flight = 0
        self._submitted_at = float("-inf")  # time.monotonic() of the last save's snapshot
        self._thread: SaverThread | None = None
        self._futures: list[concurrent.futures.Future[Any]] = []

    # Owner side --------------------------------------------------------------------------------

    def due(self, since_last_save: float, *, throttle: bool = True) -> bool:
        """A save fell due: True to take it now; False when it waits (behind the running save,
        or deferred until ``min_interval`` has passed: the timer then takes it)."""
        with self._lock:
            state = self.state
            if state is SaverState.SAVING:
                self.state = SaverState.SAVING_DUE  # written right after this one
                return False
            if state is SaverState.SAVING_DUE:
                return False
            if state is SaverState.BROKEN:
                return True  # the caller's submit raises the save's error
            wait = self.policy.min_interval - since_last_save if throttle else 0.0
            if wait <= 0:
                return True
            if state is SaverState.DEFERRED:
                return False  # the timer is armed already
            self.state = SaverState.DEFERRED
        self.thread().arm(wait)
        return False

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue a save's I/O on the saver thread."""
        with self._lock:
            self.in_flight += 1
            self._submitted_at = time.monotonic()
            if self.state is not SaverState.BROKEN:
                self.state = SaverState.SAVING
        try:
            future = self.thread().submit(self._run(job))
        except BaseException:
            self.written(None)
            raise
        with self._lock:
            self._futures.append(future)

    def queue(self, job: Callable[[], Any]) -> None:
        """Queue other saver-thread work (not a save) after the saves in flight."""
        future = self.thread().submit(job)
        with self._lock:
            self._futures.append(future)

    @property
    def pending_due(self) -> bool:
        """A save fell due and waits (deferred, or due after the running one)."""
        return self.state in (SaverState.DEFERRED, SaverState.SAVING_DUE)

    @property
    def futures(self) -> list[concurrent.futures.Future[Any]]:
        with self._lock:
            return list(self._futures)

    def reap(self) -> list[Any]:
        """Results of the finished jobs, in order; raises the first job's error."""
        with self._lock:
            futures = self._futures
            self._futures = [f for f in futures if not f.done()]
        results: list[Any] = []
        for future in futures:
            if not future.done():
                continue
            error = future.exception()
            if error is not None:
                raise error
            results.append(future.result())
        return results

    def thread(self) -> SaverThread:
        thread = self._thread
        if thread is None:
            thread = self._thread = SaverThread(self._name, self._on_timer)
        return thread

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    # Saver thread ------------------------------------------------------------------------------

    def _run(self, job: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            try:
                result = job()
            except BaseException as exc:
                self.written(exc)
                raise
            self.written(None)
            return result

        return run

    def written(self, error: BaseException | None) -> None:
        """A save finished: move the state machine and re-arm the timer."""
        arm: float | None = None
        with self._lock:
            self.in_flight -= 1
            if error is not None:
                self.state = SaverState.BROKEN
                return
            if self.in_flight:
                return
            if self.state is SaverState.SAVING_DUE:
                self.state = SaverState.DEFERRED
                arm = self.policy.min_interval
            elif self.state is SaverState.SAVING:
                self.state = SaverState.IDLE
        thread = self._thread
        if thread is not None:
            thread.arm(arm if arm is not None else self.policy.every_seconds)

    def timer_fired(self) -> bool | None:
        """On the timer: True if a deferred save is due now, False if only the period is to
        be checked, None if nothing may be saved (a save is in flight, the saver broke, or
        the deferred save is still too soon: the timer is re-armed for the rest)."""
        with self._lock:
            if self.state is SaverState.BROKEN or self.in_flight:
                return None
            if self.state is not SaverState.DEFERRED:
                return False
            # The timer keeps its earliest deadline: one armed for an earlier deferral fires
            # even after the owner took that save itself. Count the interval from the last
            # save actually taken (in real time: tests inject a clock that stands still).
            wait = self._submitted_at + self.policy.min_interval - time.monotonic()
            if wait <= 0:
                self.state = SaverState.IDLE
                return True
        self.arm(wait)
        return None

    def arm(self, delay: float) -> None:
        thread = self._thread
        if thread is not None:
            thread.arm(delay)
