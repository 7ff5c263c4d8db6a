"""The crawl stages' project settings (``crawler.settings``) that are about cost, not behaviour."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy import Spider
from scrapy.settings import Settings
from scrapy.utils.misc import is_generator_with_return_value

from common.scrapy.identity import crawl_identity
from crawler.spiders.discovery import DiscoverySpider
from crawler.spiders.validation import ValidationSpider

SPIDERS = (DiscoverySpider, ValidationSpider)
REPO_ROOT = Path(__file__).resolve().parent.parent

# A stage's start, in a fresh process: the project's settings (scrapy.cfg), the crawler as
# `scrapy crawl` creates it, its add-ons applied, then the scheduler and the middleware and
# pipeline managers the engine builds; then whether the redis package got loaded.
STAGE_START = """
import json, sys
from scrapy.core.downloader.middleware import DownloaderMiddlewareManager
from scrapy.core.spidermw import SpiderMiddlewareManager
from scrapy.crawler import CrawlerProcess
from scrapy.pipelines import ItemPipelineManager
from scrapy.utils.misc import build_from_crawler, load_object
from scrapy.utils.project import get_project_settings

settings = get_project_settings()
settings.setdict(json.loads(sys.argv[1]), priority="cmdline")
crawler = CrawlerProcess(settings).create_crawler("discovery")
crawler._apply_settings()
scheduler = build_from_crawler(load_object(crawler.settings["SCHEDULER"]), crawler)
for manager in (DownloaderMiddlewareManager, SpiderMiddlewareManager, ItemPipelineManager):
    manager.from_crawler(crawler)
print(json.dumps({"scheduler": type(scheduler).__name__, "redis": "redis" in sys.modules}))
"""


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


@pytest.mark.parametrize(
    ("overrides", "scheduler", "redis_loaded"),
    [
        ({}, "CheckpointScheduler", False),
        # Nothing is contacted before the crawl opens: an address with no server is enough.
        ({"CHECKPOINT_REDIS_URL": "redis://127.0.0.1:9/0"}, "RedisScheduler", True),
    ],
    ids=["local", "redis-url"],
)
def test_a_stage_loads_redis_only_when_its_crawl_is_shared_through_redis(
    overrides: dict[str, str], scheduler: str, redis_loaded: bool
) -> None:
    """The redis package and the frontier's modules cost every stage start ~0.1 s: the add-on
    in the project's ADDONS loads them only when CHECKPOINT_REDIS_URL switches the crawl."""
    started = subprocess.run(
        [sys.executable, "-c", STAGE_START, json.dumps(overrides)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    result = json.loads(started.stdout.splitlines()[-1])
    assert result == {"scheduler": scheduler, "redis": redis_loaded}


@pytest.mark.parametrize(
    ("spider", "arguments", "message"),
    [
        (
            DiscoverySpider,
            {"start_url": "http://site.test/", "allowed_domain": "site.test"},
            "discovery takes no argument 'allowed_domain' (did you mean allowed_domains?): its "
            "arguments are -a start_url=..., -a allowed_domains=..., -a data_dir=...",
        ),
        (
            ValidationSpider,
            {"input": "in.jsonl"},
            "validation takes no argument 'input' (did you mean input_file?): its arguments are "
            "-a input_file=..., -a data_dir=...",
        ),
    ],
    ids=["discovery", "validation"],
)
def test_a_misspelt_spider_argument_is_refused_naming_the_one_meant(
    spider: type[Spider], arguments: dict[str, str], message: str
) -> None:
    """Scrapy sets any -a as an attribute: -a allowed_domain=... was ignored without a word."""
    with pytest.raises(ValueError) as raised:
        spider(**arguments)
    assert str(raised.value) == message


def test_scrapy_and_scheduler_arguments_still_pass() -> None:
    spider = DiscoverySpider(start_url="http://site.test/", name="discovery", _job="abc")
    assert spider.start_urls == ["http://site.test/"]
