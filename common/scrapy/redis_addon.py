"""The add-on that switches a crawl to the Redis frontier, and the two parts it adds beside it.

:class:`RedisFrontierAddon` (in the project's ``ADDONS``) does nothing unless
``CHECKPOINT_REDIS_URL`` is set; then it swaps in the scheduler
(:class:`common.scrapy.redis_scheduler.RedisScheduler`) with :class:`RedisDupeFilter`, adds
:class:`RedisLineageMiddleware`, and takes out the local checkpoint's middleware and pipeline.
The settings it writes name the classes by their documented paths in
:mod:`common.scrapy.redis_scheduler`, which re-exports the two defined here.

The add-on lives apart from the scheduler so that a crawl without ``CHECKPOINT_REDIS_URL``
never loads the redis package (about 0.1 s at every stage start): this module imports only
Scrapy, and the scheduler's module is loaded by name once the add-on has switched to it.
(``common.scrapy.redis_scheduler.RedisFrontierAddon``, the older path, still works, but
loads it.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request
from scrapy.dupefilters import RFPDupeFilter
from scrapy.http import Response
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.utils.misc import load_object

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = [
    "LEASE_META",
    "PARENT_META",
    "RedisDupeFilter",
    "RedisFrontierAddon",
    "RedisLineageMiddleware",
]

#: The request meta key holding the id of the Redis lease a request was handed out under.
LEASE_META = "redis_lease"
#: The request meta key naming the lease of the page that yielded a request.
PARENT_META = "redis_parent"
# Where the settings find the classes (the paths docs/redis.md gives).
_PATH = "common.scrapy.redis_scheduler"


class RedisFrontierAddon:
    """Switches a crawl to the Redis frontier when ``CHECKPOINT_REDIS_URL`` is set."""

    def update_settings(self, settings: BaseSettings) -> None:
        if not settings.get("CHECKPOINT_REDIS_URL"):
            return
        _override(settings, "SCHEDULER", f"{_PATH}.RedisScheduler")
        _override(settings, "DUPEFILTER_CLASS", f"{_PATH}.RedisDupeFilter")
        # The crawl's state is in Redis: no local stage lock (many workers on one machine are
        # fine), no local output journal (the records are exported at the end).
        from common.scrapy.middleware import CheckpointMiddleware
        from common.scrapy.pipeline import CheckpointPipeline

        for name, component in (
            ("DOWNLOADER_MIDDLEWARES", CheckpointMiddleware),
            ("ITEM_PIPELINES", CheckpointPipeline),
        ):
            _override(settings, name, _switched_off(settings.getdict(name), component))
        spider_mw = settings.getdict("SPIDER_MIDDLEWARES")
        spider_mw[f"{_PATH}.RedisLineageMiddleware"] = 1000
        _override(settings, "SPIDER_MIDDLEWARES", spider_mw)


def _switched_off(components: dict[Any, Any], component: type) -> dict[Any, Any]:
    """``components`` with every key naming ``component`` (by any of its import paths, or the
    class itself) set to None. Only those keys: adding the other aliases as well makes Scrapy
    warn that several keys name one object."""
    switched = dict(components)
    for key in components:
        try:
            named = load_object(key) if isinstance(key, str) else key
        except (ImportError, AttributeError, NameError, ValueError):
            continue  # not ours; Scrapy names a bad entry itself when it builds the list
        if named is component:
            switched[key] = None
    return switched


def _override(settings: BaseSettings, name: str, value: Any) -> None:
    """Set ``name`` over the project's settings, but not over one given on the command line."""
    if (settings.getpriority(name) or 0) < SETTINGS_PRIORITIES["cmdline"]:
        settings.set(name, value, priority="spider")


class RedisDupeFilter(RFPDupeFilter):
    """This worker's first-level filter; the shared seen-set is in Redis.

    ``request_seen`` answers from the fingerprints this worker already sent, so an obvious
    duplicate costs no network; a new fingerprint goes to Redis with its request, and Redis
    decides atomically whether any worker saw it. Never written to disk (no ``JOBDIR`` file).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        assert crawler.request_fingerprinter is not None
        return cls(
            path=None,
            debug=crawler.settings.getbool("DUPEFILTER_DEBUG"),
            fingerprinter=crawler.request_fingerprinter,
        )

    def first_sight(self, request: Request) -> str | None:
        """The request's fingerprint if this worker has not seen it yet (now it has), else None."""
        fingerprint: str = self.request_fingerprint(request)
        if fingerprint in self.sent:
            return None
        self.sent.add(fingerprint)
        return fingerprint

    def request_seen(self, request: Request) -> bool:
        return self.first_sight(request) is None

    def forget(self) -> None:
        """Drop the local cache: everything is checked against Redis again."""
        self.sent.clear()


class RedisLineageMiddleware:
    """Spider middleware: tags each request a page yields with the page's lease.

    The scheduler holds those requests back and pushes them with the page's acknowledgement.
    """

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterator[Any]:
        parent = response.meta.get(LEASE_META)
        for element in result:
            if isinstance(element, Request):
                element.meta[PARENT_META] = parent
            yield element

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        parent = response.meta.get(LEASE_META)
        async for element in result:
            if isinstance(element, Request):
                element.meta[PARENT_META] = parent
            yield element
