"""Downloader middleware fixes for the crawl stages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.robotstxt import RobotParser
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["ReliableRobotsTxtMiddleware"]


class _OneLineDownloadErrors(logging.Filter):
    """A robots.txt that cannot be downloaded is one line, not a Twisted traceback: the
    download error names the host and the reason already (and an unreachable start URL is
    reported once more when the crawl ends)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Error downloading"):
            record.exc_info = None
            record.exc_text = None
        return True


_ONE_LINE = _OneLineDownloadErrors()


class ReliableRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with every request that waited for robots.txt checked.

    Scrapy 2.19 awaits one shared Deferred per host for all requests that arrive while
    robots.txt is being fetched; the first waiter's callback returns None, so every later waiter
    receives None ("no robots.txt": allow all). A resumed crawl restores hundreds of requests at
    once, so disallowed pages were fetched. The parser is stored on the middleware before the
    Deferred fires, so a waiter that got None reads it from there.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        logging.getLogger(RobotsTxtMiddleware.__module__).addFilter(_ONE_LINE)  # idempotent
        return super().from_crawler(crawler)

    async def robot_parser(self, request: Request) -> RobotParser | None:
        parser = await super().robot_parser(request)
        if parser is None:
            stored = self._parsers.get(urlparse_cached(request).netloc)
            if stored is not None and not isinstance(stored, Deferred):
                return stored
        return parser
