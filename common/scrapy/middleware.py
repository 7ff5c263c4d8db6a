"""Checkpointing for Scrapy crawls, switched on from settings (seed 003)::

    DOWNLOADER_MIDDLEWARES = {"common.scrapy.middleware.CheckpointMiddleware": 100}
    CHECKPOINT_ENABLED = True
    CHECKPOINT_DIR = "data/checkpoints"
    CHECKPOINT_STAGE_NAME = "stage1_discovery"

For a crawl that survives ``kill -9`` with nothing lost and nothing written twice, also set::

    SCHEDULER = "common.scrapy.scheduler.CheckpointScheduler"
    ITEM_PIPELINES = {"common.scrapy.pipeline.CheckpointPipeline": 900}

The middleware tracks the crawl (counts in the checkpoint and in Scrapy's stats under
``checkpoint/...``, the first failed download for a crawl that fetched nothing); the scheduler
adds the crash-safe frontier and the pipeline the exactly-once output. Whichever of the three is
on, the shared :class:`~common.scrapy.runtime.CrawlCheckpoint` opens the stage when the spider
opens and sets its status from the close reason; settings and close reasons are listed there. A
start the checkpoint refuses (changed input or config, a stage another process holds) logs one
error line and closes the spider as ``checkpoint_refused`` with nothing written; ``scrapy crawl``
exits non-zero for it with this project's ``crawl`` command (``COMMANDS_MODULE``).

``AsyncCheckpointTracker`` is importable from here too, as in seed 003.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.exceptions import IgnoreRequest, NotConfigured

from common.scrapy.known_settings import disabled_reason
from common.scrapy.runtime import OUTCOME_META, CrawlCheckpoint
from common.status import CheckpointStatus
from common.tracker import AsyncCheckpointTracker

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

__all__ = ["AsyncCheckpointTracker", "CheckpointMiddleware"]

logger = logging.getLogger("common.scrapy")


class CheckpointMiddleware:
    """Downloader middleware that keeps the stage checkpoint of a Scrapy crawl."""

    def __init__(self, crawler: Crawler, stats: StatsCollector) -> None:
        self.crawler = crawler
        self.stats = stats
        self.runtime = CrawlCheckpoint.for_crawler(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CheckpointMiddleware:
        if not crawler.settings.getbool("CHECKPOINT_ENABLED"):
            raise NotConfigured(disabled_reason(crawler.settings))
        assert crawler.stats is not None
        middleware = cls(crawler, crawler.stats)
        return middleware

    def process_request(self, request: Request) -> None:
        self.stats.inc_value("checkpoint/requests")

    def process_response(self, request: Request, response: Response) -> Response:
        self.runtime.note_response()
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
            self.runtime.note_download_error(request, exception)
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
