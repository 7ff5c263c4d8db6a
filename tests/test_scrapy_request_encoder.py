"""RequestEncoder: Scrapy's Request.to_dict(spider=...) without its per-call method search."""

from __future__ import annotations

from typing import Any

import pytest
import scrapy
from scrapy import FormRequest, Request
from scrapy.utils.request import request_from_dict

from common.scrapy.runtime import RequestEncoder


class Base(scrapy.Spider):
    name = "base"

    def parse_inherited(self, response: Any) -> None:
        pass


class DemoSpider(Base):
    name = "demo"

    def parse(self, response: Any) -> None:
        pass

    def parse_item(self, response: Any) -> None:
        pass

    def on_error(self, failure: Any) -> None:
        pass


class AliasSpider(DemoSpider):
    name = "alias"
    parse_alias = DemoSpider.parse_item


@pytest.fixture
def spider() -> DemoSpider:
    return DemoSpider()


def requests_for(spider: DemoSpider) -> list[Request]:
    return [
        Request("http://example.com/a"),
        Request("http://example.com/b", callback=spider.parse),
        Request(
            "http://example.com/c",
            callback=spider.parse_item,
            errback=spider.on_error,
            cb_kwargs={"depth": 2},
            meta={"k": [1, 2]},
            priority=-3,
            dont_filter=True,
            headers={"X-Test": "1"},
        ),
        Request("http://example.com/d", callback=spider.parse_inherited),
        FormRequest("http://example.com/form", formdata={"q": "x"}, callback=spider.parse),
    ]


def test_encoder_output_equals_scrapys_to_dict(spider: DemoSpider) -> None:
    encoder = RequestEncoder(spider)
    for request in requests_for(spider):
        for _ in range(2):  # the second time from the name cache
            assert encoder.to_dict(request) == request.to_dict(spider=spider)


def test_aliased_method_round_trips_to_the_same_function() -> None:
    spider = AliasSpider()
    request = Request("http://example.com/e", callback=spider.parse_alias)
    restored = request_from_dict(RequestEncoder(spider).to_dict(request), spider=spider)
    assert restored.callback.__func__ is DemoSpider.parse_item  # type: ignore[union-attr]


def test_callbacks_that_are_not_this_spiders_methods_go_through_scrapy(
    spider: DemoSpider,
) -> None:
    encoder = RequestEncoder(spider)
    request = Request("http://example.com/f", callback=lambda response: None)
    with pytest.raises(ValueError, match="not an instance method"):
        request.to_dict(spider=spider)
    with pytest.raises(ValueError, match="not an instance method"):
        encoder.to_dict(request)
    # Another instance's method: Scrapy resolves it by function, and so do we.
    request = Request("http://example.com/g", callback=DemoSpider().parse)
    assert encoder.to_dict(request) == request.to_dict(spider=spider)
