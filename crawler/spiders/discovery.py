"""``discovery`` (stage1_discovery): find every URL of a site.

``scrapy crawl discovery -a start_url=https://www.example.edu/ [-a allowed_domains=example.edu]``

From the start URLs, inside the allowed domains (by default the start URLs' hosts), up to
``DEPTH_LIMIT``, obeying robots.txt. One record per unique URL fetched, whatever its status:
redirects are recorded as such (``redirect_to``) and their target is followed as a new URL, so the
set of records does not depend on crawl order. URLs robots.txt forbids are skipped, not recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.linkextractors import LinkExtractor
from twisted.python.failure import Failure

from crawler.items import DiscoveryRecord
from crawler.spiders.common import (
    check_url,
    content_type,
    host_of,
    is_html,
    now_iso,
    refuse_unknown_arguments,
    split_arg,
    stage_path,
)
from crawler.timing import latency

META = {"dont_redirect": True, "handle_httpstatus_all": True}


class DiscoverySpider(scrapy.Spider):
    name = "discovery"
    checkpoint_stage = "stage1_discovery"
    checkpoint_output_file: str
    checkpoint_config: dict[str, Any]

    def __init__(
        self,
        start_url: str | list[str] | None = None,
        allowed_domains: str | list[str] | None = None,
        data_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        refuse_unknown_arguments("discovery", kwargs, ("start_url", "allowed_domains", "data_dir"))
        super().__init__(**kwargs)
        self.start_urls = [check_url(u) for u in split_arg(start_url)]
        if not self.start_urls:
            raise ValueError("discovery needs at least one start URL: -a start_url=URL[,URL...]")
        self.allowed_domains = split_arg(allowed_domains) or sorted(
            {host_of(u) for u in self.start_urls}
        )
        self._data_dir = data_dir
        # Not LinkExtractor(allow_domains=...): it compares host:port, so a site on a port
        # would never match its own domain.
        # deny_extensions=[]: PDFs and images are URLs of the site too, recorded like pages.
        self.link_extractor = LinkExtractor(unique=True, deny_extensions=[])
        # URLs (without fragment) this process already handed to Scrapy: see _new_links.
        self._requested: set[str] = set()
        self._depth_limit = 0

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> DiscoverySpider:
        spider: DiscoverySpider = super().from_crawler(crawler, *args, **kwargs)
        data_dir = spider._data_dir or crawler.settings.get("DATA_DIR", "data")
        spider.checkpoint_output_file = stage_path(data_dir, "stage01", "discovery_output.jsonl")
        spider.checkpoint_config = {
            "start_urls": spider.start_urls,
            "allowed_domains": spider.allowed_domains,
            "depth_limit": crawler.settings.getint("DEPTH_LIMIT"),
            "robots": crawler.settings.getbool("ROBOTSTXT_OBEY"),
        }
        spider._depth_limit = crawler.settings.getint("DEPTH_LIMIT")
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.start_urls:
            self._requested.add(url.partition("#")[0])
            yield self._request(url)

    def _request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, errback=self.on_error, meta=dict(META))

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        location = None
        raw_location = response.headers.get(b"Location")
        if 300 <= response.status < 400 and raw_location:
            location = response.urljoin(raw_location.decode("latin-1"))
        referrer = response.request.headers.get(b"Referer") if response.request else None
        yield DiscoveryRecord(
            url=response.url,
            depth=int(response.meta.get("depth", 0)),
            referrer=referrer.decode("latin-1") if referrer else None,
            status=response.status,
            content_type=content_type(response),
            discovered_at=now_iso(),
            ok=200 <= response.status < 400,
            redirect_to=location,
            download_latency=latency(response),
        )
        if location is not None:
            if self._allowed(location):
                yield self._request(location)
            return
        if response.status == 200 and isinstance(response, TextResponse) and is_html(response):
            depth = int(response.meta.get("depth", 0)) + 1
            for url in self._new_links(response, depth):
                yield self._request(url)

    def _new_links(self, response: TextResponse, depth: int) -> list[str]:
        """The allowed links of ``response`` not requested before by this process.

        On a link-dense site (a sidebar of hundreds of links on every page) nearly every link
        was requested before; Scrapy would build a Request for each, run it through the spider
        middlewares and fingerprint it only for the dupefilter to drop it, ~100 µs a link.
        Equal URLs without fragment have equal fingerprints, so dropping them here changes
        nothing the dupefilter would let through. A URL is remembered only when its request
        is sure to reach the dupefilter (not beyond DEPTH_LIMIT, where DepthMiddleware drops it
        and a shallower link to it must still be followed). The set starts empty in each
        process: after a resume the refilled dupefilter does the filtering.
        """
        requested = self._requested
        remember = not self._depth_limit or depth <= self._depth_limit
        new: list[str] = []
        for link in self.link_extractor.extract_links(response):
            url = link.url
            key = url.partition("#")[0]
            if key in requested or not self._allowed(url):
                continue
            if remember:
                requested.add(key)
            new.append(url)
        # The response caches its parsed tree in a Selector that points back at the response:
        # a reference cycle, so the tree (C memory, megabytes for a page of 14,000 links) would
        # live until a full garbage collection. Nothing reads it after this; drop it now.
        if getattr(response, "_cached_selector", None) is not None:
            response._cached_selector = None
        return new

    def _allowed(self, url: str) -> bool:
        try:
            host = host_of(url)
        except ValueError:
            return False
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def on_error(self, failure: Failure) -> Iterator[Any]:
        if isinstance(failure.value, IgnoreRequest):
            return  # robots.txt or offsite: skipped, counted by the middleware
        request = failure.request  # type: ignore[attr-defined]
        referrer = request.headers.get(b"Referer")
        yield DiscoveryRecord(
            url=request.url,
            depth=int(request.meta.get("depth", 0)),
            referrer=referrer.decode("latin-1") if referrer else None,
            status=None,
            content_type=None,
            discovered_at=now_iso(),
            ok=False,
            error=f"{type(failure.value).__name__}: {failure.getErrorMessage()}",
        )
