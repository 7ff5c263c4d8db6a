"""The crawl stages' project settings (``crawler.settings``) that are about cost, not behaviour."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from scrapy import Spider
from scrapy.settings import Settings
from scrapy.utils.misc import is_generator_with_return_value

from common.scrapy.identity import crawl_identity
from crawler.spiders.discovery import DiscoverySpider
from crawler.spiders.validation import ValidationSpider

SPIDERS = (DiscoverySpider, ValidationSpider)


def project_settings() -> Settings:
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    return settings


def generator_methods(spider: type[Spider]) -> list[Any]:
    return [
        method
        for name, method in vars(spider).items()
        if not name.startswith("__") and inspect.isgeneratorfunction(method)
    ]


class ReturnsFromAGenerator(Spider):
    name = "returns"

    def parse(self, response: Any, **kwargs: Any) -> Iterator[Any]:
        yield {"url": response.url}
        return "lost"  # the mistake Scrapy's check is there for


@pytest.mark.parametrize("spider", SPIDERS, ids=lambda s: s.name)
def test_no_callback_of_our_spiders_returns_a_value_from_a_generator(spider: type[Spider]) -> None:
    # Scrapy's per-response check (WARN_ON_GENERATOR_RETURN_VALUE) is off in the project: the
    # same check, run here once on every generator method of the pipeline's spiders.
    methods = generator_methods(spider)
    assert spider.parse in methods and spider.on_error in methods
    for method in methods:
        assert not is_generator_with_return_value(method), method.__qualname__
    assert is_generator_with_return_value(ReturnsFromAGenerator.parse)


def test_the_per_response_check_is_off_without_changing_what_a_crawl_is() -> None:
    settings = project_settings()
    assert settings.getbool("WARN_ON_GENERATOR_RETURN_VALUE") is False
    # A checkpoint written before the setting existed resumes: it is not part of the identity.
    before = project_settings()
    before.delete("WARN_ON_GENERATOR_RETURN_VALUE", priority="project")
    assert before.getpriority("WARN_ON_GENERATOR_RETURN_VALUE") is None
    spider = ValidationSpider(input_file="in.jsonl")
    assert crawl_identity(spider, settings) == crawl_identity(spider, before)
