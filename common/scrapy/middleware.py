"""Checkpointing for Scrapy crawls, switched on from settings (seed 003)::

    DOWNLOADER_MIDDLEWARES = {"common.scrapy.middleware.CheckpointMiddleware": 100}
    CHECKPOINT_ENABLED = True
    CHECKPOINT_DIR = "data/checkpoints"
    CHECKPOINT_STAGE_NAME = "stage1_discovery"

For a crawl that survives ``kill -9`` with nothing lost and nothing written twice, also set::

    SCHEDULER = "common.scrapy.scheduler.CheckpointScheduler"
    ITEM_PIPELINES = {"common.scrapy.pipeline.CheckpointPipeline": 900}

The middleware alone tracks the crawl (counts in the checkpoint and in Scrapy's stats under
``checkpoint/...``, status from the close reason, crash detection on restart); the scheduler
adds the crash-safe frontier and the pipeline the exactly-once output. All settings are listed
in :mod:`common.scrapy.runtime`. Close reasons: ``finished`` → completed; ``shutdown``
(Ctrl-C/SIGTERM), ``cancelled`` and ``closespider_*`` → paused; anything else → failed. A start
the checkpoint refuses (changed input or config, a stage another process holds) logs one error
line, closes the spider as ``checkpoint_refused`` with nothing written, and makes the process
exit with ``CHECKPOINT_REFUSED_EXIT_CODE`` (1; 0 to disable).

``AsyncCheckpointTracker`` is importable from here too, as in seed 003.
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import CloseSpider, IgnoreRequest, NotConfigured
from twisted.internet.threads import deferToThread

from common.scrapy.runtime import OUTCOME_META, CrawlCheckpoint
from common.status import CheckpointStatus
from common.tracker import AsyncCheckpointTracker

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

__all__ = ["AsyncCheckpointTracker", "CheckpointMiddleware", "exit_nonzero_if_refused"]

logger = logging.getLogger("common.scrapy")


def exit_nonzero_if_refused(crawler: Crawler, reason: str) -> None:
    """Make the process exit with ``CHECKPOINT_REFUSED_EXIT_CODE`` after a refused start.

    Scrapy's commands exit 0 for any closed spider; a refused resume must not look like success
    to a shell or a scheduler.
    """
    if reason != "checkpoint_refused":
        return
    code = crawler.settings.getint("CHECKPOINT_REFUSED_EXIT_CODE", 1)
    if code:
        atexit.register(os._exit, code)


class CheckpointMiddleware:
    """Downloader middleware that keeps the stage checkpoint of a Scrapy crawl."""

    def __init__(self, crawler: Crawler, stats: StatsCollector) -> None:
        self.crawler = crawler
        self.stats = stats
        self.runtime = CrawlCheckpoint.for_crawler(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CheckpointMiddleware:
        if not crawler.settings.getbool("CHECKPOINT_ENABLED"):
            raise NotConfigured("CHECKPOINT_ENABLED is off")
        assert crawler.stats is not None
        middleware = cls(crawler, crawler.stats)
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    async def spider_opened(self, spider: Spider) -> None:
        runtime = self.runtime
        if runtime.refused is not None:
            raise CloseSpider("checkpoint_refused")
        if runtime.checkpoint is None:  # no CheckpointScheduler: open here, tracking only
            from scrapy.utils.defer import maybe_deferred_to_future

            await maybe_deferred_to_future(deferToThread(runtime.open, spider))
            logger.warning(
                "CheckpointMiddleware without CheckpointScheduler: progress is tracked, but the "
                "frontier is not crash-safe (set SCHEDULER = "
                "'common.scrapy.scheduler.CheckpointScheduler')"
            )
        runtime.start_ticker()
        checkpoint = runtime.checkpoint
        assert checkpoint is not None
        if checkpoint.recovered_from_crash:
            self.stats.set_value("checkpoint/recovered_from_crash", True)
        if not runtime.has_work:
            logger.info("Stage %s is already completed; nothing to crawl", checkpoint.stage)

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        from scrapy.utils.defer import maybe_deferred_to_future

        exit_nonzero_if_refused(self.crawler, reason)
        self.runtime.settle(reason)
        await maybe_deferred_to_future(deferToThread(self.runtime.close))
        checkpoint = self.runtime.checkpoint
        if checkpoint is not None:
            self.stats.set_value("checkpoint/status", checkpoint.status.value)
            logger.info(
                "Checkpoint %s %s: %s",
                checkpoint.stage,
                checkpoint.status.value,
                checkpoint.progress_line(),
            )

    def process_request(self, request: Request) -> None:
        self.stats.inc_value("checkpoint/requests")

    def process_response(self, request: Request, response: Response) -> Response:
        ok = 200 <= response.status < 400
        request.meta[OUTCOME_META] = "ok" if ok else "error_status"
        self.stats.inc_value(
            "checkpoint/responses_ok" if ok else "checkpoint/responses_error_status"
        )
        if not self.runtime.frontier_enabled:
            self._track_without_frontier(request, "ok" if ok else "failed")
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if isinstance(exception, IgnoreRequest):
            request.meta[OUTCOME_META] = "skipped"
            self.stats.inc_value("checkpoint/requests_skipped")
        else:
            request.meta[OUTCOME_META] = "failed"
            self.stats.inc_value("checkpoint/requests_failed")
        if not self.runtime.frontier_enabled:
            self._track_without_frontier(request, request.meta[OUTCOME_META])

    def _track_without_frontier(self, request: Request, outcome: str) -> None:
        checkpoint = self.runtime.checkpoint
        if checkpoint is None or checkpoint.status is not CheckpointStatus.RUNNING:
            return
        checkpoint.update(
            processed=1,
            successful=1 if outcome == "ok" else 0,
            failed=1 if outcome == "failed" else 0,
            skipped=1 if outcome == "skipped" else 0,
            last_item=request.url,
        )
