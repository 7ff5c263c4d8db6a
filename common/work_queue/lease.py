"""Keep a worker's leases alive from a background thread while its batches are being done."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

import psycopg

from common.work_queue.queue import WorkQueue

__all__ = ["LeaseKeeper"]

logger = logging.getLogger("common.work_queue")


class LeaseKeeper:
    """Extend the leases of the batches a worker tracks, every ``interval`` seconds.

    The keeper owns its ``WorkQueue`` (its own connection), so extending never waits behind the
    worker's claims and commits. A tracked batch whose lease passed to another worker is noted
    as lost (:meth:`is_lost`): the worker can drop it without trying to commit. Each tick is
    also the worker's heartbeat. A database error is logged and retried on the next tick; the
    leases then simply run out, which is what a dead worker's would do.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        open_queue: Callable[[], WorkQueue],
        worker: str,
        *,
        interval: float,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self._open_queue = open_queue
        self.worker = worker
        self.interval = interval
        self._tokens: set[str] = set()
        self._lost: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def track(self, token: str) -> None:
        """Keep ``token``'s lease alive from now on."""
        with self._guard:
            self._tokens.add(token)

    def untrack(self, token: str) -> None:
        """Stop extending ``token`` (it was committed or released)."""
        with self._guard:
            self._tokens.discard(token)
            self._lost.discard(token)

    def is_lost(self, token: str) -> bool:
        """True once an extension found that another worker holds ``token``'s items."""
        with self._guard:
            return token in self._lost

    def start(self) -> None:
        """Start the heartbeat thread (a daemon: it never keeps a dying process alive)."""
        if self._thread is not None:
            raise RuntimeError("this LeaseKeeper was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"lease-keeper {self.worker}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop extending and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        queue: WorkQueue | None = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if queue is None:
                        queue = self._open_queue()
                    self._tick(queue)
                except (psycopg.Error, OSError) as exc:
                    logger.warning("Lease keeper %s: %s (retrying)", self.worker, exc)
                    if queue is not None:
                        queue.close()
                    queue = None
        finally:
            if queue is not None:
                queue.close()

    def _tick(self, queue: WorkQueue) -> None:
        with self._guard:
            tokens = set(self._tokens) - self._lost
        held = queue.extend(tokens) if tokens else set()
        queue.heartbeat(self.worker)
        with self._guard:
            # A token untracked meanwhile (committed) is not lost, merely finished.
            lost = (tokens - held) & self._tokens
            for token in lost:
                logger.warning("Worker %s lost the lease of batch %s", self.worker, token)
            self._lost |= lost
        self.ticks += 1
