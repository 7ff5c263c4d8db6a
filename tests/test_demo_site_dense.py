"""The link-dense demo site (``--profile dense``): the shape of a real documentation site.

Crawled here by a small breadth-first crawler that resolves links as browsers do (``urljoin``,
fragments dropped), against a real aiohttp server.
"""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import pytest

from tools.demo_site import (
    EXTERNAL_HOST,
    PageKind,
    build_site,
    serve_site,
    start_demo_site_process,
    stop_demo_site_process,
)
from tools.demo_site.dense import GENINDEX_ANCHORS


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href is not None:
            self.hrefs.append(href)


@dataclass
class _Crawl:
    status: dict[str, int] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    links_on: dict[str, list[str]] = field(default_factory=dict)
    duplicates: int = 0
    spellings: Counter[str] = field(default_factory=Counter)
    external: set[str] = field(default_factory=set)
    disallowed: set[str] = field(default_factory=set)


async def _crawl(session: aiohttp.ClientSession, base: str, disallowed: str) -> _Crawl:
    crawl = _Crawl()
    seen = {base + "/"}
    frontier = [base + "/"]
    while frontier:
        responses = await asyncio.gather(
            *(session.get(url, allow_redirects=False) for url in frontier)
        )
        found: list[str] = []
        for url, response in zip(frontier, responses, strict=True):
            body = await response.read()
            crawl.status[url] = response.status
            if response.status in (301, 302):
                found.append(urljoin(url, response.headers["Location"]))
                continue
            if response.status != 200:
                continue
            crawl.bodies[url] = body
            parser = _Links()
            parser.feed(body.decode())
            crawl.links_on[url] = parser.hrefs
            found += [urljoin(url, href) for href in dict.fromkeys(parser.hrefs)]
            for href in parser.hrefs:
                kind = (
                    "fragment"
                    if href.startswith("#")
                    else "absolute"
                    if "://" in href
                    else "root"
                    if href.startswith("/")
                    else "relative"
                )
                crawl.spellings[kind] += 1
        frontier = []
        for link in found:
            url = urldefrag(link).url
            if urlsplit(url).hostname == EXTERNAL_HOST:
                crawl.external.add(url)
            elif urlsplit(url).path.startswith(disallowed):
                crawl.disallowed.add(url)
            elif url in seen:
                crawl.duplicates += 1
            else:
                seen.add(url)
                frontier.append(url)
    return crawl


@pytest.mark.asyncio
async def test_a_crawl_finds_every_page_through_hundreds_of_duplicate_links_a_page() -> None:
    site = build_site(200, 4, profile="dense")
    async with serve_site(site) as base, aiohttp.ClientSession() as session:
        crawl = await _crawl(session, base, site.robots_disallowed_prefix)
        async with session.get(base + "/__stats") as response:
            served = await response.json()
    ok = {url for url, status in crawl.status.items() if status == 200}
    assert ok == set(site.expected_ok_urls(base))
    assert len(site.html_pages()) == 200
    # The same document under more than one URL: "/" and "/index.html", query variants.
    assert {base + "/", base + "/index.html"} <= ok
    assert crawl.bodies[base + "/"] == crawl.bodies[base + "/index.html"]
    assert any("?highlight=" in url for url in ok) and any("/search/?q=" in url for url in ok)
    assert len(ok) > 200 + 5
    # Dense: every page's sidebar, and a general index with thousands of fragment links.
    assert min(len(links) for links in crawl.links_on.values()) > len(site.nav) >= 40
    assert len(crawl.links_on[base + "/genindex/"]) >= GENINDEX_ANCHORS * 200
    assert crawl.duplicates > 100 * len(ok)
    assert all(crawl.spellings[kind] > 1000 for kind in ("fragment", "absolute", "relative"))
    # The special cases, each resolved as a crawler meets it.
    broken = {url for url, status in crawl.status.items() if status == 404}
    assert broken == {base + path for path in site.broken_paths} and broken
    moved = {url for url, status in crawl.status.items() if status == 301}
    assert len(moved) == len(site.paths_of_kind(PageKind.REDIRECT)) >= 2
    assert crawl.disallowed == {base + path for path in site.private_paths()}
    assert crawl.external == {f"https://{EXTERNAL_HOST}/community"}
    assert served["requests"] == len(crawl.status)


def test_the_same_pages_and_seed_give_the_same_dense_site() -> None:
    first, second = build_site(120, 9, profile="dense"), build_site(120, 9, profile="dense")
    assert first.pages == second.pages and first.nav == second.nav
    for path in ("/", "/genindex/", first.html_pages()[-1].path):
        assert first.render_html(path, "http://h:1") == second.render_html(path, "http://h:1")
    other = build_site(120, 10, profile="dense")
    assert first.render_html("/", "http://h:1") != other.render_html("/", "http://h:1")


def test_a_530_page_dense_site_has_the_documented_density() -> None:
    site = build_site(530, 11, profile="dense")
    links = {path: site.links_of(path) for path, spec in site.pages.items() if spec.is_public_html}
    assert max(len(found) for found in links.values()) >= 13_000  # the general index
    assert min(len(found) for found in links.values()) > 100  # sidebar and footer
    fetched = site.link_depths()
    duplicates = sum(len(found) for found in links.values()) - len(fetched)
    assert 80_000 < duplicates < 130_000
    deepest = max(path.count("/") for path in fetched)
    assert deepest >= 5, "pages nest three levels below their section: /guide/a/b/c/"


def test_profiles_are_checked_and_the_command_line_serves_the_dense_site() -> None:
    with pytest.raises(ValueError, match="profile"):
        build_site(10, 1, profile="sparse")
    process, base = start_demo_site_process(60, 2, profile="dense", stderr=subprocess.DEVNULL)
    try:
        expected = build_site(60, 2, profile="dense").render_html("/genindex/", base)
        with urllib.request.urlopen(base + "/genindex/") as response:
            assert response.read().decode() == expected
    finally:
        assert stop_demo_site_process(process) == 0


def test_the_simple_profile_is_a_tree_of_five_links_a_page_without_duplicates() -> None:
    site = build_site(156, 3, profile="simple")
    links = [link for spec in site.html_pages() for link in site.links_of(spec.path)]
    assert max(len(site.links_of(spec.path)) for spec in site.html_pages()) == 5
    assert len(links) == len(set(links)) == 155  # every page but "/" linked exactly once
    assert set(site.link_depths()) == {spec.path for spec in site.html_pages()}
