"""``CheckpointScheduler``: Scrapy's scheduler with a frontier that survives SIGKILL.

Enable it next to the middleware::

    SCHEDULER = "common.scrapy.scheduler.CheckpointScheduler"

It is Scrapy's own scheduler (priority queues, dupefilter, stats) kept in memory, plus the
request journal of :mod:`common.scrapy.runtime`: accepted requests are journaled as JSON with
their fingerprints, and on resume the dupefilter is refilled and the unfinished requests are
scheduled again. ``JOBDIR`` disk queues are not used (they pickle and only survive a clean stop).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from scrapy.core.scheduler import Scheduler
from scrapy.dupefilters import RFPDupeFilter
from scrapy.utils.request import request_from_dict
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from common.errors import CheckpointError
from common.scrapy.runtime import CrawlCheckpoint, ResumeFrontier

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler

__all__ = ["CheckpointScheduler"]

logger = logging.getLogger("common.scrapy")


class CheckpointScheduler(Scheduler):
    """Scheduler whose frontier and seen-set are committed with the stage checkpoint."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        scheduler = super().from_crawler(crawler)
        scheduler.runtime = CrawlCheckpoint.for_crawler(crawler)
        scheduler.runtime.frontier_enabled = scheduler.runtime.enabled
        return scheduler

    runtime: CrawlCheckpoint

    def _dqdir(self, jobdir: str | None) -> str | None:
        if jobdir:
            logger.warning(
                "JOBDIR=%s is ignored by CheckpointScheduler: the crawl's frontier and seen "
                "requests are kept with its checkpoint in CHECKPOINT_DIR (crash-safe, no "
                "pickle); JOBDIR's queues would only survive a clean stop",
                jobdir,
            )

        return None

    def open(self, spider: Spider) -> Deferred[None] | None:
        opened = super().open(spider)
        if not self.runtime.enabled:
            return opened

        def resume(frontier: ResumeFrontier) -> None:
            self._restore(frontier, spider)

        def refused(failure: Failure) -> None:
            error = failure.value
            if not isinstance(error, CheckpointError):
                failure.raiseException()
            # A refused start (changed input or config, stage locked by another process,
            # unreadable checkpoint) is one clear line, not a crawl crash: nothing was written.
            # The spider is closed once opened (see CheckpointMiddleware.spider_opened): closing
            # it from here would skip opening Scrapy's scraper and crash the close.
            self.runtime.refuse(error)

        deferred: Deferred[Any] = deferToThread(self.runtime.open, spider)
        deferred.addCallbacks(resume, refused)
        if opened is not None:
            deferred.addCallback(lambda _: opened)
        return deferred

    def _restore(self, frontier: ResumeFrontier, spider: Spider) -> None:
        # RFPDupeFilter keeps binary fingerprints in a set; refilling it directly avoids
        # rebuilding every request ever scheduled. Other dupefilters see the pending requests.
        seen = getattr(self.df, "_fingerprints", None)
        direct = isinstance(self.df, RFPDupeFilter) and isinstance(seen, set)
        if direct:
            assert isinstance(seen, set)
            seen.update(bytes.fromhex(fp) for fp in frontier.fingerprints)
        for data in frontier.pending:
            request = request_from_dict(data, spider=spider)
            if not direct:
                self.df.request_seen(request)
            self._mqpush(request)
        if frontier.pending:
            assert self.stats is not None
            self.stats.inc_value("checkpoint/requests_resumed", len(frontier.pending))

    def enqueue_request(self, request: Request) -> bool:
        runtime = self.runtime
        if runtime.enabled and not runtime.has_work:
            return False  # the stage already completed: nothing to crawl
        replacement = runtime.enabled and runtime.is_replacement(request)
        if replacement:
            # A retry or redirect of a journaled request: it replaces that request, so it is
            # crawled whatever the dupefilter says (otherwise the original is never finished),
            # and it does not make its URL "seen": that URL may still come as a request of its
            # own (a redirect target that is also a discovered URL), before or after a resume.
            self._mqpush(request)
            assert self.stats is not None
            self.stats.inc_value("scheduler/enqueued/memory")
            self.stats.inc_value("scheduler/enqueued")
        elif not super().enqueue_request(request):
            return False
        if runtime.enabled:
            fingerprint = None if replacement else self._fingerprint(request)
            runtime.record_request(request, fingerprint, self.spider)
        return True

    def _fingerprint(self, request: Request) -> str:
        assert self.crawler is not None and self.crawler.request_fingerprinter is not None
        return self.crawler.request_fingerprinter.fingerprint(request).hex()

    def next_request(self) -> Request | None:
        runtime = self.runtime
        if runtime.enabled:
            runtime.reconcile()
        request = super().next_request()
        if request is not None and runtime.enabled:
            runtime.handed_out(request)
        return request
