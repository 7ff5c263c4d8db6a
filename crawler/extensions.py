"""Crawl tuning extensions."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["GcTuning"]


class GcTuning:
    """Raise the cyclic GC's thresholds for the crawl (``GC_THRESHOLD``), restore them after.

    A crawl allocates many short-lived objects; with the default generation-0 threshold of 700
    the collector runs constantly and a local crawl spends a large share of its time in it.
    Reference counting still frees almost everything at once; cycles are collected less often.
    """

    def __init__(self, threshold: tuple[int, ...]) -> None:
        self.threshold = threshold
        self.previous = gc.get_threshold()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> GcTuning:
        value = crawler.settings.getlist("GC_THRESHOLD")
        if not value:
            raise NotConfigured("GC_THRESHOLD is not set")
        extension = cls(tuple(int(v) for v in value))
        crawler.signals.connect(extension.engine_started, signal=signals.engine_started)
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def engine_started(self) -> None:
        self.previous = gc.get_threshold()
        gc.set_threshold(*self.threshold)

    def engine_stopped(self) -> None:
        gc.set_threshold(*self.previous)
