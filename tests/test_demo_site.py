"""Tests of the demo site: the model, a real server crawled breadth-first, and the subprocess."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.demo_site import (
    EXTERNAL_HOST,
    MAX_DEPTH,
    DemoSiteStartError,
    PageKind,
    build_site,
    render,
    serve_site,
    start_demo_site_process,
    stop_demo_site_process,
)

# --------------------------------------------------------------------------------------------
# The model


def test_same_pages_and_seed_build_the_same_site() -> None:
    first, second = build_site(300, 11), build_site(300, 11)
    assert first == second
    assert list(first.pages) == list(second.pages)
    for path in ("/", *first.transient_paths()[:3], first.html_pages()[-1].path):
        assert first.render_html(path, "http://h:1") == second.render_html(path, "http://h:1")


def test_another_seed_builds_another_site() -> None:
    first, other = build_site(300, 11), build_site(300, 12)
    assert first.pages != other.pages
    assert first.transient_paths() != other.transient_paths()
    assert first.render_html("/", "http://h:1") != other.render_html("/", "http://h:1")


@settings(max_examples=40, deadline=None)
@given(pages=st.integers(min_value=1, max_value=400), seed=st.integers(0, 2**32))
def test_any_site_has_exactly_n_reachable_pages_within_the_depth_bound(
    pages: int, seed: int
) -> None:
    site = build_site(pages, seed)
    public = {spec.path for spec in site.html_pages()}
    assert len(public) == pages
    depths = site.link_depths(obey_robots=True)
    assert public <= depths.keys()
    assert not any(path.startswith(site.robots_disallowed_prefix) for path in depths)
    everything = site.link_depths(obey_robots=False)
    assert max(everything.values()) <= MAX_DEPTH
    for path, spec in site.pages.items():
        if spec.kind is PageKind.HTML:
            for link in site.links_of(path):
                assert (
                    link in site.pages or link in site.broken_paths or link.startswith("https://")
                )
    # Everything served is linked from somewhere, so a crawl sees every special case.
    assert set(site.pages) <= everything.keys()


def test_a_large_site_is_specified_not_rendered_and_keeps_the_depth_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What keeps a 100,000-page build cheap: bodies are rendered on request, never at build time
    # (how fast it is belongs to the benchmarks, not to a wall-clock limit here).
    def no_rendering(*args: object) -> str:
        raise AssertionError("build_site rendered a page")

    monkeypatch.setattr(render, "render_html", no_rendering)
    monkeypatch.setattr(render, "description", no_rendering)
    site = build_site(100_000, 3)
    assert len(site.html_pages()) == 100_000
    assert max(site.link_depths(obey_robots=False).values()) <= MAX_DEPTH


def test_special_cases_have_the_documented_shares() -> None:
    site = build_site(1000, 5)
    assert len(site.broken_paths) == 30
    assert len(site.slow_paths()) == 20
    assert len(site.transient_paths()) == 20
    assert len(site.paths_of_kind(PageKind.ERROR)) == 10
    assert len(site.paths_of_kind(PageKind.PDF)) + len(site.paths_of_kind(PageKind.IMAGE)) == 30
    assert len(site.private_paths()) == 10
    assert len(site.external_urls) == 10
    linked = {link for spec in site.pages.values() for link in spec.extra_links}
    redirect_entries = [p for p in site.paths_of_kind(PageKind.REDIRECT) if p in linked]
    assert len(redirect_entries) == 30
    chains = [p for p in redirect_entries if len(site.redirect_chain(p)) > 2]
    assert 2 <= len(chains) <= 10
    assert all(len(site.redirect_chain(p)) <= 4 for p in chains)
    assert not set(site.slow_paths()) & set(site.transient_paths())
    assert "/" not in site.slow_paths() + site.transient_paths()
    other_languages = [spec for spec in site.html_pages() if spec.lang != "en"]
    assert 10 <= len(other_languages) <= 50


# --------------------------------------------------------------------------------------------
# A real server, crawled breadth-first


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.meta: dict[str, str] = {}
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        self.tags.add(tag)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        elif tag == "html":
            self.meta["lang"] = values.get("lang", "")
        elif tag == "meta" and values.get("name") == "description":
            self.meta["description"] = values.get("content", "")
        elif tag == "link" and values.get("rel") == "canonical":
            self.meta["canonical"] = values.get("href", "")


@dataclass
class _Fetch:
    status: int
    content_type: str
    body: bytes
    final_path: str
    hops: list[int] = field(default_factory=list)
    unavailable: int = 0


@dataclass
class _Crawl:
    fetches: dict[str, _Fetch] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)
    html: dict[str, _PageParser] = field(default_factory=dict)
    external: set[str] = field(default_factory=set)
    disallowed: set[str] = field(default_factory=set)
    requests: int = 0


async def _fetch(session: aiohttp.ClientSession, base: str, path: str, crawl: _Crawl) -> _Fetch:
    hops: list[int] = []
    unavailable = 0
    current = path
    while True:
        crawl.requests += 1
        async with session.get(base + current, allow_redirects=False) as response:
            if response.status in (301, 302):
                assert len(hops) < 5
                hops.append(response.status)
                current = urlsplit(response.headers["Location"]).path
                continue
            if response.status == 503 and unavailable < 2:
                unavailable += 1
                continue
            body = await response.read()
            return _Fetch(response.status, response.content_type, body, current, hops, unavailable)


async def _crawl(session: aiohttp.ClientSession, base: str, disallowed_prefix: str) -> _Crawl:
    crawl = _Crawl()
    seen = {"/"}
    frontier = ["/"]
    depth = 0
    while frontier:
        results = await asyncio.gather(*(_fetch(session, base, p, crawl) for p in frontier))
        next_frontier: list[str] = []
        for path, result in zip(frontier, results, strict=True):
            crawl.fetches[path] = result
            crawl.depth[path] = depth
            final = result.final_path
            if final != path:
                if final in crawl.depth:
                    continue
                seen.add(final)
                crawl.depth[final] = depth
                crawl.fetches[final] = result
            if result.status != 200 or result.content_type != "text/html":
                continue
            parser = _PageParser()
            parser.feed(result.body.decode())
            crawl.html[final] = parser
            for link in parser.links:
                if link.startswith("https://"):
                    crawl.external.add(link)
                elif link.startswith(disallowed_prefix):
                    crawl.disallowed.add(link)
                elif link not in seen:
                    seen.add(link)
                    next_frontier.append(link)
        frontier = next_frontier
        depth += 1
    return crawl


async def _stats(session: aiohttp.ClientSession, base: str) -> dict[str, object]:
    async with session.get(base + "/__stats") as response:
        result: dict[str, object] = await response.json()
        return result


@pytest.mark.asyncio
async def test_crawling_the_server_finds_exactly_the_pages_and_every_special_case() -> None:
    site = build_site(300, 21)
    async with serve_site(site, slow_ms=10) as base, aiohttp.ClientSession() as session:
        assert base.startswith("http://127.0.0.1:")
        crawl = await _crawl(session, base, site.robots_disallowed_prefix)
        stats = await _stats(session, base)

    ok = {
        path
        for path, fetch in crawl.fetches.items()
        if fetch.final_path == path and fetch.status == 200 and fetch.content_type == "text/html"
    }
    assert len(ok) == 300
    assert {base + path for path in ok} == set(site.expected_ok_urls(base))
    assert max(crawl.depth.values()) <= MAX_DEPTH

    by_status: dict[int, set[str]] = {}
    for fetch in crawl.fetches.values():
        by_status.setdefault(fetch.status, set()).add(fetch.final_path)
    assert by_status[404] == set(site.broken_paths)
    assert by_status[500] == set(site.paths_of_kind(PageKind.ERROR))
    assert len(site.broken_paths) == 9 and len(by_status[500]) == 3

    redirected = {path: fetch for path, fetch in crawl.fetches.items() if fetch.hops}
    assert redirected
    assert any(len(fetch.hops) >= 2 for fetch in redirected.values())
    assert {status for fetch in redirected.values() for status in fetch.hops} <= {301, 302}
    for path, fetch in redirected.items():
        assert fetch.status == 200
        assert fetch.final_path == site.redirect_chain(path)[-1]

    pdfs = [f for f in crawl.fetches.values() if f.content_type == "application/pdf"]
    pngs = [f for f in crawl.fetches.values() if f.content_type == "image/png"]
    assert pdfs and pngs and len(pdfs) + len(pngs) == 9
    assert all(f.body.startswith(b"%PDF-1.4") and f.body.rstrip().endswith(b"%%EOF") for f in pdfs)
    assert all(f.body.startswith(b"\x89PNG\r\n\x1a\n") for f in pngs)

    # Each transient page failed exactly once, and redirects never lead to one.
    assert sum(fetch.unavailable for fetch in crawl.fetches.values()) == 6
    assert {p for p, f in crawl.fetches.items() if f.unavailable} == set(site.transient_paths())
    assert set(site.slow_paths()) <= ok

    assert crawl.disallowed == set(site.private_paths()) and len(crawl.disallowed) == 3
    assert crawl.external == set(site.external_urls)
    assert all(urlsplit(url).hostname == EXTERNAL_HOST for url in crawl.external)

    assert {parser.meta["lang"] for parser in crawl.html.values()} >= {"en", "fr"}
    for path, parser in crawl.html.items():
        assert parser.meta["canonical"] == base + path
        assert parser.meta["description"]
        assert {"title", "h1", "h2", "p"} <= parser.tags
        assert 3 <= len(set(parser.links)) <= 30

    assert {base + path for path in crawl.fetches} == set(site.expected_linked_urls(base))
    assert stats["requests"] == crawl.requests
    paths = stats["paths"]
    assert isinstance(paths, dict)
    assert set(paths) == set(crawl.fetches) | {
        hop for path in redirected for hop in site.redirect_chain(path)
    }


@pytest.mark.asyncio
async def test_a_transient_page_fails_once_then_succeeds() -> None:
    site = build_site(100, 4)
    path = site.transient_paths()[0]
    async with serve_site(site) as base, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(3):
            async with session.get(base + path) as response:
                statuses.append(response.status)
        assert statuses == [503, 200, 200]

        async with session.post(base + "/__stats/reset") as response:
            assert response.status == 200
        async with session.get(base + path) as response:
            assert response.status == 200, "a plain reset keeps the transient state"

        async with session.post(base + "/__stats/reset?transient=1") as response:
            assert response.status == 200
        async with session.get(base + path) as response:
            assert response.status == 503


@pytest.mark.asyncio
async def test_stats_count_every_request_but_their_own() -> None:
    site = build_site(50, 1)
    async with serve_site(site) as base, aiohttp.ClientSession() as session:
        for path in ("/", "/", "/no-such-page/", "/robots.txt"):
            async with session.get(base + path) as response:
                await response.read()
        assert await _stats(session, base) == {
            "requests": 4,
            "paths": {"/": 2, "/no-such-page/": 1, "/robots.txt": 1},
        }
        assert (await _stats(session, base))["requests"] == 4
        async with session.post(base + "/__stats/reset") as response:
            assert await response.json() == {"requests": 0, "paths": {}}
        assert await _stats(session, base) == {"requests": 0, "paths": {}}


@pytest.mark.asyncio
async def test_robots_txt_disallows_the_private_pages_that_still_answer() -> None:
    site = build_site(200, 9)
    async with serve_site(site) as base, aiohttp.ClientSession() as session:
        async with session.get(base + "/robots.txt") as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            assert await response.text() == "User-agent: *\nDisallow: /private/\n"
        private = site.private_paths()[0]
        async with session.get(base + private) as response:
            assert response.status == 200
            assert response.content_type == "text/html"


@pytest.mark.asyncio
async def test_latency_and_slow_pages_delay_the_response() -> None:
    site = build_site(100, 2)
    slow_path = site.slow_paths()[0]
    async with (
        serve_site(site, latency_ms=50, slow_ms=100) as base,
        aiohttp.ClientSession() as session,
    ):
        for path, at_least in (("/", 0.05), (slow_path, 0.15)):
            started = time.perf_counter()
            async with session.get(base + path) as response:
                assert response.status == 200
                await response.read()
            assert time.perf_counter() - started >= at_least


# --------------------------------------------------------------------------------------------
# The subprocess


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_process_prints_its_url_serves_and_exits_cleanly(signum: signal.Signals) -> None:
    process, base = start_demo_site_process(40, 5)
    try:
        assert urlsplit(base).hostname == "127.0.0.1" and urlsplit(base).port
        status, body = _get(base + "/")
        assert status == 200
        assert body == build_site(40, 5).render_html("/", base), "same site in every process"
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        stop_demo_site_process(process)


def test_robots_ms_delays_robots_txt_like_a_real_sites_round_trip() -> None:
    process, base = start_demo_site_process(40, 5, robots_ms=150, stderr=subprocess.DEVNULL)
    try:
        started = time.perf_counter()
        status, body = _get(base + "/robots.txt")
        assert time.perf_counter() - started >= 0.15
        assert (status, body) == (200, build_site(40, 5).robots_txt())
    finally:
        stop_demo_site_process(process)


def test_stop_demo_site_process_returns_zero() -> None:
    process, _ = start_demo_site_process(10, 1)
    assert stop_demo_site_process(process) == 0


def test_a_process_that_cannot_start_raises_a_clear_error() -> None:
    with pytest.raises(DemoSiteStartError, match="exited with code 2"):
        start_demo_site_process(0, 1, stderr=subprocess.DEVNULL)


def test_the_demo_sites_port_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m tools.demo_site --port 65536``: exit 2 naming the value, not a traceback."""
    from tools.demo_site.cli import _parser

    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["--port", "65536"])
    assert exited.value.code == 2
    assert "argument --port: must be a port number 0..65535, got 65536" in capsys.readouterr().err


def test_a_port_in_use_is_one_error_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m tools.demo_site --port N`` with N taken printed an OSError traceback."""
    import socket

    from tools.demo_site.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--pages", "5"]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot listen on 127.0.0.1 port {port}: address already in use\n"
    )
