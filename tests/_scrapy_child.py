"""A plain Scrapy user's crawl with the three checkpoint components on, in its own process.

``python tests/_scrapy_child.py CONFIG_JSON`` runs :class:`UserSpider` on the demo site under
the runner CONFIG names (``process``: CrawlerProcess, ``runner``: CrawlerRunner, ``async``:
AsyncCrawlerRunner, ``crawler``: an awaited ``Crawler.crawl_async()``) and prints one JSON line
``RESULT {...}`` with the crawl's stats, what later pipelines saw and the feed's lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import AsyncCrawlerRunner, Crawler, CrawlerProcess, CrawlerRunner
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from scrapy.utils.log import configure_logging
from scrapy.utils.reactor import install_reactor

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
SEEN: list[dict[str, Any]] = []


class UserSpider(scrapy.Spider):
    """Follows links; items with or without ``url``; may close itself with its own reason."""

    name = "user"

    def __init__(
        self, url: str = "", keyless: str = "", close_after: str = "0", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.start_urls = [url]
        self.keyless = keyless == "1"
        self.close_after = int(close_after)
        self.parsed = 0

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        self.parsed += 1
        if self.close_after and self.parsed > self.close_after:
            raise CloseSpider("my_reason")
        title = response.css("title::text").get() if hasattr(response, "css") else None
        yield {"title": title, "page": response.url} if self.keyless else {"url": response.url}
        if hasattr(response, "css"):
            yield from response.follow_all(css="a", callback=self.parse)


class SeenPipeline:
    """A later pipeline: records every item it is given."""

    def process_item(self, item: Any) -> Any:
        SEEN.append(dict(item))
        return item


def settings_for(config: dict[str, Any]) -> dict[str, Any]:
    data = Path(config["data_dir"])
    settings: dict[str, Any] = {
        "TWISTED_REACTOR": REACTOR,
        "LOG_LEVEL": "INFO",
        "TELNETCONSOLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "DEPTH_LIMIT": 1,
        "CHECKPOINT_ENABLED": True,
        "CHECKPOINT_DIR": str(data / "checkpoints"),
        "DOWNLOADER_MIDDLEWARES": {"common.checkpoint_middleware.CheckpointMiddleware": 100},
        "SCHEDULER": "common.scrapy.scheduler.CheckpointScheduler",
        "ITEM_PIPELINES": {
            "common.scrapy.pipeline.CheckpointPipeline": 300,
            f"{__name__}.SeenPipeline": 800,
        },
        "FEEDS": {str(data / "feed.jsonl"): {"format": "jsonlines", "overwrite": True}},
    }
    if config.get("output", True):
        settings["CHECKPOINT_OUTPUT_FILE"] = str(data / "output.jsonl")
    settings.update(config.get("settings", {}))
    return settings


def run(config: dict[str, Any]) -> Crawler:
    settings = settings_for(config)
    mode = config.get("mode", "process")
    kwargs = config.get("spider_args", {})
    if mode == "process":
        process = CrawlerProcess(settings)
        crawler = process.create_crawler(UserSpider)
        process.crawl(crawler, **kwargs)
        process.start()
        return crawler
    install_reactor(REACTOR)
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    configure_logging(settings)
    if mode == "runner":
        runner = CrawlerRunner(settings)
        crawler = runner.create_crawler(UserSpider)
        done: Deferred[Any] = runner.crawl(crawler, **kwargs)
    else:
        async_runner = AsyncCrawlerRunner(settings)
        crawler = (
            async_runner.create_crawler(UserSpider)
            if mode == "async"
            else Crawler(UserSpider, settings)
        )

        async def crawl() -> None:
            if mode == "async":
                await async_runner.crawl(crawler, **kwargs)
            else:
                await crawler.crawl_async(**kwargs)

        done = Deferred.fromFuture(asyncio.ensure_future(crawl()))
    done.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return crawler


def main() -> None:
    config = json.loads(sys.argv[1])
    crawler = run(config)
    assert crawler.stats is not None
    stats = {k: v for k, v in crawler.stats.get_stats().items() if isinstance(v, int | str)}
    feed = Path(config["data_dir"]) / "feed.jsonl"
    result = {
        "stats": stats,
        "seen": SEEN,
        "feed_lines": len(feed.read_text().splitlines()) if feed.exists() else None,
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
