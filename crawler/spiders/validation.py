"""``validation`` (stage2_validation): check every URL discovery found.

``scrapy crawl validation [-a input_file=data/processed/stage01/discovery_output.jsonl]``

One record per discovered URL: final status, ``ok`` (2xx after redirects), content type, the
redirect chain, the final URL, and the error when it could not be fetched (those also go to the
``.failed.jsonl`` sidecar so they can be retried).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from common.records import iter_records, unique_urls, validate_records
from crawler.items import ValidationRecord
from crawler.spiders.common import content_type, now_iso, refuse_unknown_arguments, stage_path
from crawler.timing import latency


def read_discovered_urls(path: Path) -> list[str]:
    """The URLs of discovery's output, in file order, each once."""
    return unique_urls(iter_records(path, kind="discovery"))


def validate_discovered(path: Path) -> None:
    """The engine reads the whole input with this before the stage starts over."""
    validate_records(path, kind="discovery")


class ValidationSpider(scrapy.Spider):
    name = "validation"
    checkpoint_stage = "stage2_validation"
    # Error statuses reach the callback to be recorded; 3xx stay with RedirectMiddleware, so
    # redirects are followed and their chain recorded (handle_httpstatus_all would stop that).
    # A spider attribute, not request meta: meta is journaled with every request.
    handle_httpstatus_list = list(range(400, 600))
    checkpoint_input_file: str
    checkpoint_output_file: str
    checkpoint_config: dict[str, Any]
    checkpoint_input_validator = staticmethod(validate_discovered)

    def __init__(self, input_file: str | None = None, data_dir: str | None = None, **kwargs: Any):
        refuse_unknown_arguments("validation", kwargs, ("input_file", "data_dir"))
        super().__init__(**kwargs)
        self._input_file = input_file
        self._data_dir = data_dir
        self.checkpoint_total_items: int | None = None
        self.checkpoint_error: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> ValidationSpider:
        spider: ValidationSpider = super().from_crawler(crawler, *args, **kwargs)
        data_dir = spider._data_dir or crawler.settings.get("DATA_DIR", "data")
        spider.checkpoint_input_file = spider._input_file or stage_path(
            data_dir, "stage01", "discovery_output.jsonl"
        )
        if not Path(spider.checkpoint_input_file).is_file():
            raise FileNotFoundError(
                f"validation input {spider.checkpoint_input_file} does not exist: run discovery "
                f"first or pass -a input_file=FILE"
            )
        spider.checkpoint_output_file = stage_path(data_dir, "stage02", "validation_output.jsonl")
        spider.checkpoint_config = {"retry_times": crawler.settings.getint("RETRY_TIMES")}
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        path = Path(self.checkpoint_input_file)
        try:
            urls = await maybe_deferred_to_future(deferToThread(read_discovered_urls, path))
        except (ValueError, OSError) as exc:
            # One line naming the file and line, and the stage failed (an ``*_error`` reason),
            # not Scrapy's start_error traceback.
            self.checkpoint_error = str(exc)
            raise CloseSpider("input_error") from None
        self.checkpoint_total_items = len(urls)
        for url in urls:
            yield scrapy.Request(url, callback=self.parse, errback=self.on_error)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        chain = [str(u) for u in response.meta.get("redirect_urls", [])]
        original = chain[0] if chain else response.url
        yield ValidationRecord(
            url=original,
            status=response.status,
            ok=200 <= response.status < 300,
            content_type=content_type(response),
            final_url=response.url,
            redirect_chain=[*chain, response.url] if chain else [],
            checked_at=now_iso(),
            download_latency=latency(response),
        )

    def on_error(self, failure: Failure) -> Iterator[Any]:
        request = failure.request  # type: ignore[attr-defined]
        chain = [str(u) for u in request.meta.get("redirect_urls", [])]
        yield ValidationRecord(
            url=chain[0] if chain else request.url,
            status=None,
            ok=False,
            content_type=None,
            final_url=None,
            redirect_chain=[*chain, request.url] if chain else [],
            error=f"{type(failure.value).__name__}: {failure.getErrorMessage()}",
            checked_at=now_iso(),
        )
