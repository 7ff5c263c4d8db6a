"""One thread that runs a Scrapy crawl's Redis calls in order, off the reactor thread.

Scrapy's reactor must never wait on the network. Jobs submitted here run one at a time, in
submission order, on a single thread (so a batch of acknowledgements is never overtaken by a
later one); each job's result or error comes back as a Deferred fired on the reactor thread.
When no job arrives for ``idle_interval`` seconds, ``on_idle`` runs on the pump thread: it
renews the worker's lease even while the reactor is busy elsewhere.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["RedisPump"]

logger = logging.getLogger("common.redis")

_Job = tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]


class RedisPump:
    """A single worker thread for blocking calls, with results delivered to the reactor."""

    def __init__(
        self,
        reactor: Any,
        *,
        name: str = "redis-pump",
        idle_interval: float | None = None,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        self._reactor = reactor
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle_interval = idle_interval
        self._on_idle = on_idle
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, func: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run ``func(*args)`` on the pump thread after every job submitted before it."""
        if self._stopping:
            raise RuntimeError("the Redis pump is stopped")
        deferred: Deferred[Any] = Deferred()
        self._jobs.put((func, args, deferred))
        return deferred

    def stop(self) -> Deferred[None]:
        """Finish the jobs already submitted, then end the thread; fires once they are done."""
        done = self.submit(lambda: None)
        self._stopping = True
        self._jobs.put(None)
        return done

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_interval)
            except queue.Empty:
                self._idle()
                continue
            if job is None:
                return
            func, args, deferred = job
            try:
                result = func(*args)
            except BaseException:
                self._reactor.callFromThread(deferred.errback, Failure())  # type: ignore[no-untyped-call]
            else:
                self._reactor.callFromThread(deferred.callback, result)

    def _idle(self) -> None:
        if self._on_idle is None:
            return
        try:
            self._on_idle()
        except Exception as exc:  # the next call retries; the reactor side reports outages
            logger.warning("Redis heartbeat failed: %s", exc)
