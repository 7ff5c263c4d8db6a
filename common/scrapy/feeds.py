"""Scrapy's feed exports (``-o``, ``-O``, ``FEEDS``) beside a crawl checkpoint.

A feed is written by Scrapy's ``FeedExporter`` as items pass, outside the checkpoint: it is not
crash-safe, and a resumed crawl exports only the items it crawls itself. After a kill, an
overwriting feed (``-O``) holds the last run's items only; an appending one (``-o``) repeats the
items exported after the last save and misses those in flight. That is inherent, so it is said
once when the crawl opens (:func:`warn_feeds_are_per_run`), naming ``CHECKPOINT_OUTPUT_FILE``,
the crawl's exactly-once record.

What is not inherent is a crawl that closes at once (a refused start, a completed stage run
again) storing an empty feed: with ``-O`` that empties the completed crawl's feed.
:func:`leave_feeds_alone` keeps such a crawl from touching its feeds at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.extensions.feedexport import FeedExporter

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["feed_uris", "leave_feeds_alone", "warn_feeds_are_per_run"]

logger = logging.getLogger("common.scrapy")


def _exporter(crawler: Crawler) -> FeedExporter | None:
    exporter: FeedExporter | None = crawler.get_extension(FeedExporter)
    return exporter


def feed_uris(crawler: Crawler) -> list[str]:
    """The feeds the crawl exports to (their URIs as configured), none without a feed."""
    exporter = _exporter(crawler)
    return list(exporter.feeds) if exporter is not None else []


def warn_feeds_are_per_run(crawler: Crawler, output_file: str | None, done_before: int) -> None:
    """One WARNING when the crawl has feeds: what they hold, and which file to use instead."""
    uris = feed_uris(crawler)
    if not uris:
        return
    record = (
        f"CHECKPOINT_OUTPUT_FILE ({output_file}) is the crawl's exactly-once record: use it"
        if output_file
        else "set CHECKPOINT_OUTPUT_FILE for an exactly-once record of every item"
    )
    resumed = (
        f"; this run resumes after {done_before} items, which it does not export again"
        if done_before
        else ""
    )
    logger.warning(
        "Feeds (%s) hold this run's items only and are not exactly-once across kills: a "
        "resumed crawl exports only what it crawls itself, and a kill loses or repeats the "
        "items exported since the last save%s; %s",
        ", ".join(uris),
        resumed,
        record,
    )


def leave_feeds_alone(crawler: Crawler) -> list[str]:
    """Keep a crawl closing before it crawled anything from storing its (empty) feeds.

    Scrapy stores an empty feed at close (``FEED_STORE_EMPTY``), which for an overwriting feed
    truncates the file. Whether the exporter has opened its slots yet or not (both are its
    public state), none of them stores anything now. Returns the feeds' URIs.
    """
    exporter = _exporter(crawler)
    if exporter is None:
        return []
    for options in exporter.feeds.values():
        options["store_empty"] = False
    for slot in exporter.slots:
        slot.store_empty = False
    return list(exporter.feeds)
