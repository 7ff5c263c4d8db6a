"""The discovery spider on link-dense pages: duplicates dropped early, parsed trees freed at once.

Unit tests drive the real spider with real Scrapy responses; the last test crawls the link-dense
demo site (``--profile dense``) with ``scrapy crawl discovery`` in a child process.
"""

from __future__ import annotations

import gc
import json
import re
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.spiders.discovery import DiscoverySpider
from tests._demo_site import serving_demo_site
from tools.demo_site import build_site, client
from tools.testing.crawl import DISCOVERY_OUTPUT, crawl_command, run_crawl
from tools.testing.jsonl_audit import audit_jsonl

BASE = "http://docs.test"


def _spider(depth_limit: int = 0) -> DiscoverySpider:
    crawler = get_crawler(DiscoverySpider, {"DEPTH_LIMIT": depth_limit})
    spider: DiscoverySpider = DiscoverySpider.from_crawler(crawler, start_url=BASE + "/")
    return spider


def _page(path: str, hrefs: list[str], depth: int = 0) -> HtmlResponse:
    links = "".join(f'<a href="{href}">x</a>' for href in hrefs)
    request = Request(BASE + path, meta={"depth": depth})
    body = f"<html><body>{links}</body></html>".encode()
    headers = {"Content-Type": "text/html; charset=utf-8"}
    return HtmlResponse(BASE + path, body=body, headers=headers, request=request)


def _requested(spider: DiscoverySpider, response: HtmlResponse) -> list[str]:
    return [r.url for r in spider.parse(response) if isinstance(r, Request)]


def test_a_url_already_requested_is_not_requested_again_whatever_its_fragment() -> None:
    spider = _spider()
    first = _requested(spider, _page("/", ["/a/", "/a/#intro", "b/", "/a/", "https://x.test/"]))
    assert first == [BASE + "/a/", BASE + "/b/"]
    # Another page: its links to /a/ and to itself (any spelling, any fragment) are not new.
    second = _requested(
        spider, _page("/b/", ["../a/#usage", BASE + "/a/", "#top", "/c/?q=1", "/c/"])
    )
    assert second == [BASE + "/c/?q=1", BASE + "/c/"]


def test_links_past_the_depth_limit_are_not_remembered() -> None:
    # DepthMiddleware drops them, so a shallower page linking the same URL must still yield it.
    spider = _spider(depth_limit=2)
    assert _requested(spider, _page("/deep/", ["/x/"], depth=2)) == [BASE + "/x/"]
    assert _requested(spider, _page("/", ["/x/"], depth=0)) == [BASE + "/x/"]
    assert _requested(spider, _page("/y/", ["/x/"], depth=0)) == []


def test_a_parsed_page_tree_is_freed_without_a_garbage_collection() -> None:
    spider = _spider()
    response = _page("/", [f"/p/{k}/" for k in range(500)])
    selector = weakref.ref(response.selector)
    gc.disable()
    try:
        assert len(_requested(spider, response)) == 500
        assert selector() is None, "the response still holds its parsed tree"
        assert response.text  # the response itself is intact
    finally:
        gc.enable()


@pytest.fixture(scope="module")
def dense_site() -> Iterator[str]:
    with serving_demo_site(200, 4, profile="dense") as base_url:
        yield base_url


@pytest.mark.slow
def test_the_dense_site_is_crawled_whole_with_few_requests_left_to_the_dupefilter(
    dense_site: str, tmp_path: Path
) -> None:
    site = build_site(200, 4, profile="dense")
    client.reset(dense_site)
    log = tmp_path / "crawl.log"
    result = run_crawl(
        crawl_command("discovery", tmp_path, start_url=dense_site + "/"),
        log_path=log,
        timeout=240,
    )
    assert result.returncode == 0, log.read_text()[-3000:]
    output = audit_jsonl(tmp_path / DISCOVERY_OUTPUT)
    assert not output.doubled and not output.bad_lines and not output.torn
    ok = {
        json.loads(line)["url"]
        for line in (tmp_path / DISCOVERY_OUTPUT).read_text().splitlines()
        if json.loads(line)["status"] == 200
    }
    assert ok == set(site.expected_ok_urls(dense_site))
    served = client.stats(dense_site)
    assert served["requests"] == output.lines + 1  # each URL once, plus robots.txt
    # The pages hold ~45,000 links to URLs already requested; the spider drops nearly all of them.
    filtered = re.findall(r"'dupefilter/filtered': (\d+)", log.read_text())
    assert int(filtered[-1] if filtered else 0) < 50
