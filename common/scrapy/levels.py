"""``BreadthFirstQueue``: a crawl that really is breadth-first, level by level.

::

    SCHEDULER_PRIORITY_QUEUE = "common.scrapy.levels.BreadthFirstQueue"

``DEPTH_PRIORITY = 1`` with FIFO queues only *prefers* shallow requests: with 32 requests in
flight, a depth-2 page can be parsed before a depth-1 page that links the same URL, so that URL
is first seen (and recorded, and cut by ``DEPTH_LIMIT``) one level too deep, differently in every
run. This queue keys requests by their depth and hands out a request of depth *d* only once no
request of a smaller depth is waiting or in progress (downloaded, parsed and its links
scheduled), and a request deeper than the start URLs only once the spider's ``start()`` is
exhausted. Every URL is then first reached along a shortest path: its recorded depth is its
breadth-first distance from the start URLs, the same in every run, and the pages found under a
``DEPTH_LIMIT`` that cuts the crawl are exactly the breadth-first set.

The price is the tail of each level: the last pages of one level are fetched before the next
level starts. Within a level, requests go first in, first out (``priority`` is not used). Works
with Scrapy's scheduler and with :class:`~common.scrapy.scheduler.CheckpointScheduler` (whose
resumed requests keep their depth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.pqueues import ScrapyPriorityQueue

if TYPE_CHECKING:
    from scrapy import Request

__all__ = ["BreadthFirstQueue"]


class BreadthFirstQueue(ScrapyPriorityQueue):
    """Scrapy's priority queue keyed by depth, releasing one depth level at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Handed out and not yet finished by the engine (at most CONCURRENT_REQUESTS of them).
        self._active: dict[Request, int] = {}

    def priority(self, request: Request) -> int:
        return int(request.meta.get("depth", 0))

    def pop(self) -> Request | None:
        level = self.curprio
        if level is None:
            return None
        if level > 0 and getattr(self.crawler.engine, "_start", None) is not None:
            return None  # start URLs still coming: each is depth 0, whatever was found so far
        if self._active and level > self._lowest_active_level():
            return None  # the level above is still being parsed: its links may be shallower
        request = super().pop()
        if request is not None:
            self._active[request] = level
        return request

    def _lowest_active_level(self) -> int:
        engine = self.crawler.engine
        slot = getattr(engine, "_slot", None)
        inprogress: set[Request] | None = getattr(slot, "inprogress", None)
        if inprogress is not None:
            for request in [r for r in self._active if r not in inprogress]:
                del self._active[request]
        return min(self._active.values(), default=1 << 62)
