"""PageFetcher and EnrichmentConfig against a real aiohttp server on 127.0.0.1.

Every test gets its own in-process server. Its handlers record what they saw (hits and arrival
times per path, user agents, concurrency); tests synchronise on asyncio events, never on sleeps.
Backoff is configured in milliseconds so retries cost nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

import enrich.slots as slots_module
from enrich.config import EnrichmentConfig
from enrich.fetch import FetchOutcome, FetchResult, PageFetcher, parse_retry_after
from enrich.slots import RequestSlots

HTML = b"<html><head><title>t</title></head><body><p>hello</p></body></html>"
STREAM_TOTAL = 64 * 1024 * 1024  # far more than any socket buffer, so an early close is seen
STREAM_CHUNK = 64 * 1024
USER_AGENT = "enrich-tests/1.0"


@dataclass
class ServerState:
    """What the test server observed."""

    hits: Counter[str] = field(default_factory=Counter)
    times: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    user_agents: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    gate_at: int = 1
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    stream_done: asyncio.Event = field(default_factory=asyncio.Event)
    stream_completed: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)


STATE = web.AppKey("state", ServerState)


@dataclass
class Server:
    """A running test server and what it observed."""

    server: TestServer
    state: ServerState

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def total_hits(self) -> int:
        return sum(self.state.hits.values())


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    state.hits[request.path] += 1
    state.times[request.path].append(asyncio.get_running_loop().time())
    state.user_agents.append(request.headers.get("User-Agent", ""))
    return await handler(request)


def html_response() -> web.Response:
    return web.Response(body=HTML, content_type="text/html", charset="utf-8")


async def page(request: web.Request) -> web.StreamResponse:
    return html_response()


async def flaky(request: web.Request) -> web.StreamResponse:
    failures = int(request.query["fail"])
    if request.app[STATE].hits[request.path] <= failures:
        return web.Response(status=503, text="try later")
    return html_response()


async def ratelimited(request: web.Request) -> web.StreamResponse:
    if request.app[STATE].hits[request.path] == 1:
        return web.Response(status=429, headers={"Retry-After": request.query["after"]})
    return html_response()


async def always_500(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text="broken")


async def missing(request: web.Request) -> web.StreamResponse:
    return web.Response(status=404, text="no such page")


async def hang(request: web.Request) -> web.StreamResponse:
    # Waits until teardown: the client's sock_read timeout must fire first.
    await request.app[STATE].release.wait()
    return html_response()


async def big(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"x" * int(request.query["size"]), content_type="text/html")


async def stream(request: web.Request) -> web.StreamResponse:
    """Stream STREAM_TOTAL bytes without Content-Length; note whether the client took them all."""
    state = request.app[STATE]
    response = web.StreamResponse(headers={"Content-Type": request.query["type"]})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        chunk = b"x" * STREAM_CHUNK
        for _ in range(STREAM_TOTAL // STREAM_CHUNK):
            await response.write(chunk)
        await response.write_eof()
        state.stream_completed = True
    except ConnectionError:
        pass
    finally:
        state.stream_done.set()
    return response


async def redirect_chain(request: web.Request) -> web.StreamResponse:
    remaining = int(request.match_info["n"])
    location = "/page" if remaining == 0 else f"/redirect/{remaining - 1}"
    raise web.HTTPFound(location)


async def to_localhost(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(f"http://localhost:{request.url.port}/page")


async def loop_a(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/loop/b")


async def loop_b(request: web.Request) -> web.StreamResponse:
    raise web.HTTPTemporaryRedirect(str(request.url.with_path("/loop/a")))


async def concurrent(request: web.Request) -> web.StreamResponse:
    """Hold every request until `gate_at` are in flight together, recording the maximum."""
    state = request.app[STATE]
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    if state.in_flight >= state.gate_at:
        state.gate.set()
    try:
        await state.gate.wait()
    finally:
        state.in_flight -= 1
    return html_response()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    state = ServerState()
    app = web.Application(middlewares=[record])
    app[STATE] = state
    app.add_routes(
        [
            web.get("/page", page),
            web.get("/flaky", flaky),
            web.get("/ratelimited", ratelimited),
            web.get("/always500", always_500),
            web.get("/missing", missing),
            web.get("/hang", hang),
            web.get("/big", big),
            web.get("/stream", stream),
            web.get("/redirect/{n}", redirect_chain),
            web.get("/to-localhost", to_localhost),
            web.get("/loop/a", loop_a),
            web.get("/loop/b", loop_b),
            web.get("/concurrent", concurrent),
        ]
    )
    test_server = TestServer(app, handler_cancellation=True)
    await test_server.start_server()
    try:
        yield Server(test_server, state)
    finally:
        state.release.set()
        state.gate.set()
        await test_server.close()


def make_config(**overrides: Any) -> EnrichmentConfig:
    settings: dict[str, Any] = {
        "backoff_base": 0.001,
        "backoff_max": 0.01,
        "total_timeout": 10.0,
        "connect_timeout": 5.0,
        "sock_read_timeout": 5.0,
        "user_agent": USER_AGENT,
    }
    settings.update(overrides)
    return EnrichmentConfig(**settings)


async def fetch_one(url: str, config: EnrichmentConfig | None = None) -> FetchResult:
    async with PageFetcher(config or make_config(), rng=random.Random(0)) as fetcher:
        return await fetcher.fetch(url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- success and retries -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_plain_page_is_fetched(server: Server) -> None:
    url = server.url("/page")
    result = await fetch_one(url)

    assert result.outcome is FetchOutcome.OK
    assert result.ok
    assert result.body == HTML
    assert result.status == 200
    assert result.content_type == "text/html; charset=utf-8"
    assert result.url == url
    assert result.final_url == url
    assert result.redirect_chain == ()
    assert result.error is None
    assert result.attempts == 1
    assert server.state.user_agents == [USER_AGENT]


@pytest.mark.asyncio
async def test_503_is_retried_until_success(server: Server) -> None:
    result = await fetch_one(server.url("/flaky?fail=2"), make_config(max_retries=3))

    assert result.outcome is FetchOutcome.OK
    assert result.body == HTML
    assert result.attempts == 3
    assert server.state.hits["/flaky"] == 3


@pytest.mark.asyncio
async def test_429_waits_for_retry_after(server: Server) -> None:
    config = make_config(backoff_max=5.0)
    result = await fetch_one(server.url("/ratelimited?after=0.2"), config)

    assert result.outcome is FetchOutcome.OK
    assert result.attempts == 2
    first, second = server.state.times["/ratelimited"]
    assert second - first >= 0.2


@pytest.mark.asyncio
async def test_retry_after_is_capped_by_backoff_max(server: Server) -> None:
    config = make_config(backoff_max=0.05)
    result = await fetch_one(server.url("/ratelimited?after=3600"), config)

    assert result.outcome is FetchOutcome.OK
    first, second = server.state.times["/ratelimited"]
    assert 0.05 <= second - first < 5


@pytest.mark.asyncio
async def test_persistent_500_exhausts_retries(server: Server) -> None:
    result = await fetch_one(server.url("/always500"), make_config(max_retries=2))

    assert result.outcome is FetchOutcome.FAILED_TRANSIENT_EXHAUSTED
    assert result.status == 500
    assert result.body is None
    assert result.attempts == 3
    assert result.error is not None and "HTTP 500" in result.error
    assert server.state.hits["/always500"] == 3


@pytest.mark.asyncio
async def test_404_is_not_retried(server: Server) -> None:
    result = await fetch_one(server.url("/missing"), make_config(max_retries=3))

    assert result.outcome is FetchOutcome.FAILED_PERMANENT
    assert result.status == 404
    assert result.attempts == 1
    assert server.state.hits["/missing"] == 1


@pytest.mark.asyncio
async def test_connection_refused_is_retried_then_fails() -> None:
    result = await fetch_one(f"http://127.0.0.1:{free_port()}/", make_config(max_retries=2))

    assert result.outcome is FetchOutcome.FAILED_TRANSIENT_EXHAUSTED
    assert result.status is None
    assert result.attempts == 3
    assert result.error is not None and "ClientConnectorError" in result.error


@pytest.mark.asyncio
async def test_read_timeout_is_retried_then_fails(server: Server) -> None:
    # No total or connect limit: only the read timeout can end a request to /hang (without it
    # the test would hang until pytest's timeout), so no wall-clock bound is needed.
    config = make_config(
        sock_read_timeout=0.2, total_timeout=None, connect_timeout=None, max_retries=1
    )
    result = await fetch_one(server.url("/hang"), config)

    assert result.outcome is FetchOutcome.FAILED_TRANSIENT_EXHAUSTED
    assert result.attempts == 2
    assert result.error is not None and "Timeout" in result.error
    assert server.state.hits["/hang"] == 2


# --- body size and content type -----------------------------------------------------------


@pytest.mark.asyncio
async def test_content_length_above_cap_is_refused(server: Server) -> None:
    result = await fetch_one(server.url("/big?size=2000"), make_config(max_body_bytes=1000))

    assert result.outcome is FetchOutcome.TOO_LARGE
    assert result.body is None
    assert result.error is not None and "Content-Length 2000" in result.error


@pytest.mark.asyncio
async def test_body_exactly_at_cap_is_kept(server: Server) -> None:
    result = await fetch_one(server.url("/big?size=1000"), make_config(max_body_bytes=1000))

    assert result.outcome is FetchOutcome.OK
    assert result.body == b"x" * 1000


@pytest.mark.asyncio
async def test_chunked_body_is_cut_at_cap(server: Server) -> None:
    config = make_config(max_body_bytes=100_000)
    result = await fetch_one(server.url("/stream?type=text/html"), config)

    assert result.outcome is FetchOutcome.TOO_LARGE
    assert result.body is None
    assert result.error is not None and "max_body_bytes 100000" in result.error
    async with asyncio.timeout(120):  # bounds a hang, not a speed
        await server.state.stream_done.wait()
    assert not server.state.stream_completed


@pytest.mark.asyncio
async def test_non_html_is_skipped_without_reading_body(server: Server) -> None:
    result = await fetch_one(server.url("/stream?type=application/pdf"))

    assert result.outcome is FetchOutcome.SKIPPED_NON_HTML
    assert result.status == 200
    assert result.content_type == "application/pdf"
    assert result.body is None
    async with asyncio.timeout(120):  # bounds a hang, not a speed
        await server.state.stream_done.wait()
    assert not server.state.stream_completed


# --- redirects and domains ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_redirects_inside_domain_are_followed(server: Server) -> None:
    config = make_config(allowed_domains=("127.0.0.1",))
    result = await fetch_one(server.url("/redirect/2"), config)

    assert result.outcome is FetchOutcome.OK
    assert result.body == HTML
    assert result.url == server.url("/redirect/2")
    assert result.final_url == server.url("/page")
    assert result.redirect_chain == (
        server.url("/redirect/2"),
        server.url("/redirect/1"),
        server.url("/redirect/0"),
    )
    assert result.attempts == 4


@pytest.mark.asyncio
async def test_redirect_to_other_domain_is_refused(server: Server) -> None:
    config = make_config(allowed_domains=("127.0.0.1",))
    result = await fetch_one(server.url("/to-localhost"), config)

    assert result.outcome is FetchOutcome.REFUSED_DOMAIN
    assert result.status == 301
    assert result.redirect_chain == (server.url("/to-localhost"),)
    assert result.error is not None and "localhost" in result.error
    assert server.state.hits["/page"] == 0


@pytest.mark.asyncio
async def test_start_url_outside_domains_is_not_requested(server: Server) -> None:
    result = await fetch_one(server.url("/page"), make_config(allowed_domains=("example.com",)))

    assert result.outcome is FetchOutcome.REFUSED_DOMAIN
    assert result.attempts == 0
    assert server.total_hits == 0


@pytest.mark.asyncio
async def test_redirect_loop_is_an_error(server: Server) -> None:
    result = await fetch_one(server.url("/loop/a"))

    assert result.outcome is FetchOutcome.FAILED_PERMANENT
    assert result.error is not None and "loop" in result.error
    assert result.redirect_chain == (server.url("/loop/a"), server.url("/loop/b"))
    assert server.state.hits["/loop/a"] == 1


@pytest.mark.asyncio
async def test_too_many_redirects_is_an_error(server: Server) -> None:
    result = await fetch_one(server.url("/redirect/3"), make_config(max_redirects=2))

    assert result.outcome is FetchOutcome.FAILED_PERMANENT
    assert result.error is not None and "too many redirects" in result.error
    assert server.state.hits["/page"] == 0


@pytest.mark.asyncio
async def test_redirects_not_followed_when_disabled(server: Server) -> None:
    result = await fetch_one(server.url("/redirect/0"), make_config(follow_redirects=False))

    assert result.outcome is FetchOutcome.FAILED_PERMANENT
    assert result.status == 302
    assert server.state.hits["/page"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file", "not a url", "http:///nohost"])
async def test_unfetchable_urls_fail_without_a_request(url: str) -> None:
    result = await fetch_one(url)

    assert result.outcome is FetchOutcome.FAILED_PERMANENT
    assert result.attempts == 0
    assert result.error


# --- concurrency and session ownership ------------------------------------------------------


@dataclass
class ClientRequests:
    """Requests the client session has started and not yet got a response to, via tracing."""

    in_flight: int = 0
    max_in_flight: int = 0

    def trace_config(self) -> aiohttp.TraceConfig:
        async def started(*_: object) -> None:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        async def ended(*_: object) -> None:
            self.in_flight -= 1

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(started)
        trace.on_request_end.append(ended)
        trace.on_request_exception.append(ended)
        return trace


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("concurrency", "per_host", "expected"),
    [(64, 3, 3), (2, 16, 2)],
    ids=["per-host-limit", "total-limit"],
)
async def test_concurrency_limits_are_respected(
    server: Server, concurrency: int, per_host: int, expected: int
) -> None:
    server.state.gate_at = expected
    client = ClientRequests()
    config = make_config(concurrency=concurrency, per_host_concurrency=per_host)
    # An unlimited connector: only the fetcher's own limits can hold the line. Without them all
    # twelve requests start before the first response, which the client-side trace would see.
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trace_configs=[client.trace_config()]
        ) as session,
        PageFetcher(config, session=session) as fetcher,
    ):
        async with asyncio.timeout(120):  # bounds a hang, not a speed
            results = await asyncio.gather(
                *(fetcher.fetch(server.url("/concurrent")) for _ in range(12))
            )

    assert all(result.ok for result in results)
    assert client.max_in_flight == expected
    assert server.state.max_in_flight == expected
    assert server.state.hits["/concurrent"] == 12


@pytest.mark.asyncio
async def test_injected_session_is_left_open(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        async with PageFetcher(make_config(), session=session) as fetcher:
            assert fetcher.session is session
            result = await fetcher.fetch(server.url("/page"))
        assert result.ok
        assert not session.closed
        assert server.state.user_agents == [USER_AGENT]


@pytest.mark.asyncio
async def test_own_session_is_closed_on_exit(server: Server) -> None:
    async with PageFetcher(make_config()) as fetcher:
        session = fetcher.session
        assert (await fetcher.fetch(server.url("/page"))).ok
    assert session.closed


@pytest.mark.asyncio
async def test_fetcher_lifecycle_misuse_is_explained() -> None:
    fetcher = PageFetcher(make_config())
    with pytest.raises(RuntimeError, match="async with"):
        await fetcher.fetch("http://127.0.0.1/")
    async with fetcher:
        pass
    with pytest.raises(RuntimeError, match="entered only once"):
        await fetcher.__aenter__()
    with pytest.raises(RuntimeError, match="closed"):
        await fetcher.fetch("http://127.0.0.1/")


def test_fetch_result_to_dict_is_json_safe() -> None:
    result = FetchResult(
        url="http://a/",
        final_url="http://a/b",
        outcome=FetchOutcome.OK,
        status=200,
        body=b"abc",
        redirect_chain=("http://a/",),
        attempts=2,
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["outcome"] == "ok"
    assert data["body_size"] == 3
    assert data["redirect_chain"] == ["http://a/"]
    assert "body" not in data


# --- Retry-After parsing ------------------------------------------------------------------


def test_parse_retry_after_forms() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0.25 ", now=now) == 0.25
    assert parse_retry_after(
        format_datetime(now + timedelta(seconds=30), usegmt=True), now=now
    ) == (30.0)
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0.0
    assert parse_retry_after("-5", now=now) == 0.0
    for unusable in (None, "", "soon", "inf", "nan"):
        assert parse_retry_after(unusable, now=now) is None


# --- configuration --------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = EnrichmentConfig()
    assert config.concurrency == 64
    assert config.per_host_concurrency == 16
    assert config.max_retries == 3
    assert config.max_body_bytes == 5 * 1024 * 1024
    assert config.allowed_domains == ()
    assert config.is_allowed("https://anything.example/")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"concurrency": 0}, "concurrency must be >= 1"),
        ({"per_host_concurrency": 1.5}, "per_host_concurrency must be an integer"),
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"max_retries": True}, "max_retries must be an integer"),
        ({"total_timeout": 0}, "total_timeout must be > 0"),
        ({"sock_read_timeout": float("inf")}, "sock_read_timeout must be finite"),
        ({"connect_timeout": "10"}, "connect_timeout must be a number of seconds or None"),
        ({"backoff_base": 2.0, "backoff_max": 1.0}, r"backoff_max \(1.0\) must be >= backoff_base"),
        ({"max_body_bytes": 0}, "max_body_bytes must be >= 1"),
        ({"max_redirects": -1}, "max_redirects must be >= 0"),
        ({"follow_redirects": "yes"}, "follow_redirects must be True or False"),
        ({"user_agent": " "}, "user_agent must be a non-empty string"),
        ({"allowed_domains": "example.com"}, "not a single string"),
        ({"allowed_domains": ("http://example.com",)}, "without scheme, port or path"),
        ({"allowed_domains": ("example.com:80",)}, "without scheme, port or path"),
        ({"directory_index": "index.html"}, "tuple of file names"),
        ({"directory_index": ("docs/index.html",)}, "bare file names"),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnrichmentConfig(**overrides)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        # What a TOML or JSON table gets wrong: nothing is coerced.
        ({"follow_redirects": "false"}, "follow_redirects must be True or False, got 'false'"),
        ({"concurrency": "3"}, "concurrency must be an integer, got '3'"),
        ({"concurrency": 3.0}, "concurrency must be an integer, got 3.0"),
        ({"block_private_addresses": 1}, "block_private_addresses must be True or False"),
        ({"per_host": 4}, "unknown setting 'per_host' \\(known: concurrency, "),
    ],
)
def test_config_from_a_table_is_strict_and_names_its_source(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^settings.toml \\[enrichment\\]: {message}"):
        EnrichmentConfig.from_mapping(table, source="settings.toml [enrichment]")


def test_config_from_a_table_takes_arrays_as_tuples() -> None:
    table = {
        "concurrency": 8,
        "follow_redirects": False,
        "allowed_domains": ["Example.com"],
        "directory_index": [],
        "total_timeout": None,
    }
    config = EnrichmentConfig.from_mapping(table)

    assert (config.concurrency, config.follow_redirects, config.total_timeout) == (8, False, None)
    assert config.allowed_domains == ("example.com",)
    assert config.directory_index == ()
    assert EnrichmentConfig.from_mapping(config.to_dict()) == config


def test_config_allowed_domains_match_subdomains_only() -> None:
    config = EnrichmentConfig(allowed_domains=["Example.COM.", ".example.com", "127.0.0.1"])  # type: ignore[arg-type]

    assert config.allowed_domains == ("example.com", "127.0.0.1")
    assert config.is_allowed("http://example.com/")
    assert config.is_allowed("https://www.EXAMPLE.com./a")
    assert config.is_allowed("http://127.0.0.1:8080/")
    assert not config.is_allowed("http://notexample.com/")
    assert not config.is_allowed("http://example.com.evil.org/")
    assert not config.is_allowed("http://localhost/")
    assert not config.is_allowed("http://[bad/")


def test_config_to_dict_is_stable_and_json_safe() -> None:
    config = make_config(allowed_domains=("example.com",))
    data = config.to_dict()

    assert json.loads(json.dumps(data, sort_keys=True)) == data
    assert data["allowed_domains"] == ["example.com"]
    assert data == make_config(allowed_domains=("EXAMPLE.com",)).to_dict()
    assert data != make_config(allowed_domains=("example.org",)).to_dict()


def test_backoff_delay_grows_and_is_capped() -> None:
    fixed = EnrichmentConfig(backoff_base=0.5, backoff_max=3.0, backoff_jitter=False)
    assert [fixed.backoff_delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert fixed.backoff_delay(10_000) == 3.0

    jittered = EnrichmentConfig(backoff_base=0.5, backoff_max=3.0)
    rng = random.Random(1)
    delays = [jittered.backoff_delay(3, rng) for _ in range(200)]
    assert all(0.0 <= delay <= 2.0 for delay in delays)
    assert len(set(delays)) > 100
    assert fixed.client_timeout() == aiohttp.ClientTimeout(total=60.0, connect=10.0, sock_read=30.0)


# --- pacing per host ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_requests_to_one_host_start_per_host_delay_apart_retries_included(
    server: Server,
) -> None:
    delay = 0.3
    config = make_config(per_host_delay=delay, per_host_concurrency=4, max_retries=2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with PageFetcher(config, rng=random.Random(0)) as fetcher:
        results = await asyncio.gather(
            *(fetcher.fetch(server.url(f"/page?n={n}")) for n in range(3)),
            fetcher.fetch(server.url("/flaky?fail=1")),
        )

    assert all(result.ok for result in results)
    # Five request starts to one host (three pages, a 503 and its retry): the k-th arrives no
    # earlier than k delays after the fetches began. (A lower bound: a busy machine only adds.)
    arrivals = sorted(server.state.times["/page"] + server.state.times["/flaky"])
    assert len(arrivals) == 5
    for k, arrival in enumerate(arrivals):
        assert arrival - began >= k * delay - 0.005, (k, [a - began for a in arrivals])


@pytest.mark.asyncio
async def test_per_host_delay_paces_each_host_on_its_own(server: Server) -> None:
    delay = 1.0
    config = make_config(per_host_delay=delay)
    other_host = server.url("/flaky?fail=0").replace("127.0.0.1", "localhost")
    async with PageFetcher(config) as fetcher:
        first = await fetcher.fetch(server.url("/page?n=0"))
        paced, other = await asyncio.gather(
            fetcher.fetch(server.url("/page?n=1")), fetcher.fetch(other_host)
        )

    assert first.ok and paced.ok and other.ok
    # localhost's first request did not queue behind 127.0.0.1's pause.
    assert server.state.times["/flaky"][0] < server.state.times["/page"][1]


def test_per_host_delay_must_be_seconds() -> None:
    with pytest.raises(ValueError, match="per_host_delay must be >= 0"):
        EnrichmentConfig(per_host_delay=-1)
    with pytest.raises(ValueError, match="per_host_delay must be a number of seconds"):
        EnrichmentConfig(per_host_delay="1")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_paced_hosts_are_forgotten_once_their_time_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slots_module, "_PACED_HOSTS_KEPT", 4)
    slots = RequestSlots(make_config(per_host_delay=0.001))
    for n in range(4):
        await slots._pace(f"h{n}.test")
    # Past every reserved start (a lower bound: waiting longer changes nothing).
    await asyncio.sleep(0.01)
    await slots._pace("h4.test")

    assert set(slots._next_start) == {"h4.test"}
