"""Downloader middleware fixes for the crawl stages."""

from __future__ import annotations

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.robotstxt import RobotParser
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

__all__ = ["ReliableRobotsTxtMiddleware"]


class ReliableRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with every request that waited for robots.txt checked.

    Scrapy 2.19 awaits one shared Deferred per host for all requests that arrive while
    robots.txt is being fetched; the first waiter's callback returns None, so every later waiter
    receives None ("no robots.txt": allow all). A resumed crawl restores hundreds of requests at
    once, so disallowed pages were fetched. The parser is stored on the middleware before the
    Deferred fires, so a waiter that got None reads it from there.
    """

    async def robot_parser(self, request: Request) -> RobotParser | None:
        parser = await super().robot_parser(request)
        if parser is None:
            stored = self._parsers.get(urlparse_cached(request).netloc)
            if stored is not None and not isinstance(stored, Deferred):
                return stored
        return parser
