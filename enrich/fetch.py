"""Fetch HTML pages for the enrichment stage, politely and within bounds.

:class:`PageFetcher` wraps one :class:`aiohttp.ClientSession` (injected, or created and closed by
the fetcher) and turns every URL into a :class:`FetchResult`; it never raises for an HTTP or
network problem, so a caller driving many fetches can record each outcome and move on::

    async with PageFetcher(config) as fetcher:
        result = await fetcher.fetch(url)
        if result.outcome is FetchOutcome.OK:
            page = extract_page(result.final_url, result.body, result.content_type)

What a fetch does:

* at most ``config.concurrency`` requests in flight, and ``config.per_host_concurrency`` per host
  name; a fetch waits for a slot *before* its request starts, so queueing never eats into the
  request's timeouts, and gives the slot back while it sleeps between retries;
* with ``config.per_host_delay``, request starts to one host are that many seconds apart
  (retries and redirect hops included); the wait holds the host's slot, not a global one;
* retries connection errors, timeouts, 429 and 5xx with exponential backoff and full jitter, or
  after the server's ``Retry-After`` (capped by ``config.backoff_max``); other 4xx are final;
* follows redirects itself, checking every hop against ``config.allowed_domains`` and failing on
  loops and on more than ``config.max_redirects`` hops;
* with ``config.block_private_addresses``, never connects to a non-public address: IP literals
  are checked before each request, names on the addresses they resolve to when the connection is
  made (:class:`enrich.addresses.GuardedResolver`), on every hop;
* downloads only ``text/html`` and ``application/xhtml+xml`` bodies, streamed and abandoned as soon
  as they exceed ``config.max_body_bytes`` (or refused up front on a larger ``Content-Length``).

aiohttp runs on asyncio only, so the fetcher does too; the anyio primitives it uses are
backend-neutral and the event loop is never blocked.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Final, Self

import aiohttp
import anyio
from aiohttp import hdrs
from yarl import URL

from enrich.addresses import BlockedAddressError, GuardedResolver, refusal_reason
from enrich.config import EnrichmentConfig

__all__ = [
    "HTML_CONTENT_TYPES",
    "FetchOutcome",
    "FetchResult",
    "PageFetcher",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

HTML_CONTENT_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE: Final = 64 * 1024
# Failures that a retry cannot fix: a malformed URL, or a TLS certificate/fingerprint problem.
_PERMANENT_CLIENT_ERRORS: Final = (
    aiohttp.InvalidURL,
    aiohttp.ClientSSLError,
    aiohttp.ServerFingerprintMismatch,
)


class FetchOutcome(enum.StrEnum):
    """How a fetch ended; the value is what goes into output records."""

    OK = "ok"
    """An HTML body was downloaded in full."""
    SKIPPED_NON_HTML = "skipped_non_html"
    """The final response was 2xx but not HTML; its body was not downloaded."""
    FAILED_PERMANENT = "failed_permanent"
    """An error a retry cannot fix: 4xx (not 429), bad URL, redirect loop or too many hops."""
    FAILED_TRANSIENT_EXHAUSTED = "failed_transient_exhausted"
    """Connection errors, timeouts, 429 or 5xx persisted through every retry."""
    REFUSED_DOMAIN = "refused_domain"
    """The URL, or a redirect hop, points outside ``allowed_domains``; nothing was sent there."""
    TOO_LARGE = "too_large"
    """The HTML body is larger than ``max_body_bytes``."""
    REFUSED_ADDRESS = "refused_address"
    """With ``block_private_addresses``: the URL, or a redirect hop, is or resolves to a
    private, loopback or link-local address; no connection was made to it."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of :meth:`PageFetcher.fetch` for one URL.

    ``url`` is the URL as passed in; ``final_url`` the last URL requested (after redirects).
    ``redirect_chain`` lists, in order, the URLs that answered with a redirect that was followed.
    ``body`` is set only when ``outcome`` is :attr:`FetchOutcome.OK`. ``content_type`` is the raw
    ``Content-Type`` header (charset included), ready for :func:`enrich.extract.extract_page`.
    ``attempts`` counts every request sent, retries and redirect hops included.
    """

    url: str
    final_url: str
    outcome: FetchOutcome
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    redirect_chain: tuple[str, ...] = ()
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        """True if an HTML body was downloaded."""
        return self.outcome is FetchOutcome.OK

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-safe summary for output records: all fields but the body, plus its size."""
        return {
            "url": self.url,
            "final_url": self.final_url,
            "outcome": self.outcome.value,
            "status": self.status,
            "content_type": self.content_type,
            "body_size": None if self.body is None else len(self.body),
            "redirect_chain": list(self.redirect_chain),
            "error": self.error,
            "attempts": self.attempts,
        }


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds from ``now``; ``None`` if absent or unusable.

    Accepts delay-seconds (fractions too, which some servers send) and HTTP dates; a date in the
    past gives 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# One hop's answer, before retry and redirect policy is applied.
@dataclass(frozen=True, slots=True)
class _Final:
    outcome: FetchOutcome
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Redirect:
    status: int
    location: URL


@dataclass(frozen=True, slots=True)
class _Transient:
    error: str
    status: int | None = None
    retry_after: float | None = None


@dataclass(slots=True)
class _HostSlot:
    semaphore: anyio.Semaphore
    users: int = 0


#: Hosts whose next request start is remembered past their last request, before the fetcher
#: forgets those whose time has passed.
_PACED_HOSTS_KEPT = 1024


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _unfetchable(url: URL) -> str | None:
    if url.scheme not in ("http", "https"):
        return f"unsupported URL scheme {url.scheme!r} (only http and https are fetched)"
    if not url.raw_host:
        return "URL has no host"
    return None


def _without_fragment(url: URL) -> URL:
    return url.with_fragment(None)


class PageFetcher:
    """Fetch pages under the limits and policies of an :class:`EnrichmentConfig`.

    Use as an async context manager. With ``session=None`` the fetcher creates its own
    :class:`aiohttp.ClientSession` on entry and closes it on exit; an injected session is used
    as is and left open (its owner closes it). Either way the config's timeouts, user agent and
    redirect policy are applied per request, and the concurrency limits are the fetcher's own,
    so they hold whatever connector the session has. ``rng`` makes backoff jitter reproducible.
    """

    def __init__(
        self,
        config: EnrichmentConfig | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config or EnrichmentConfig()
        self._session = session
        self._owns_session = session is None
        self._rng = rng or random.Random()
        self._state = _State.UNOPENED
        self._timeout = self._config.client_timeout()
        self._headers = {hdrs.USER_AGENT: self._config.user_agent}
        self._global_slots = anyio.Semaphore(self._config.concurrency)
        self._host_slots: dict[str, _HostSlot] = {}
        # host -> the earliest start of its next request (anyio clock), with per_host_delay.
        self._next_start: dict[str, float] = {}
        self._prune_at = _PACED_HOSTS_KEPT
        self._networks = self._config.networks()
        if self._config.block_private_addresses and session is not None:
            raise ValueError(
                "block_private_addresses checks addresses in the fetcher's own connector; "
                "let the PageFetcher create its session (pass session=None)"
            )

    @property
    def config(self) -> EnrichmentConfig:
        """The configuration this fetcher applies."""
        return self._config

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session requests go through (available once the fetcher is entered)."""
        if self._session is None:
            raise RuntimeError("the PageFetcher has no session yet: enter it with `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        if self._state is not _State.UNOPENED:
            raise RuntimeError(
                f"this PageFetcher is {self._state.value}; a fetcher can be entered only once, "
                "create a new one"
            )
        if self._session is None:
            # Our semaphores do the limiting; the connector's limits match them so they never
            # bind, and a request never waits for a pooled connection inside its connect timeout.
            connector = aiohttp.TCPConnector(
                limit=self._config.concurrency,
                limit_per_host=self._config.per_host_concurrency,
                resolver=GuardedResolver(allowed=self._networks)
                if self._config.block_private_addresses
                else None,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers
            )
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url``, following redirects and retrying transient failures.

        Never raises for HTTP or network problems: they are reported in the result's
        ``outcome`` and ``error``. Cancellation propagates as usual.
        """
        if self._state is not _State.OPEN or self._session is None:
            raise RuntimeError(
                f"this PageFetcher is {self._state.value}: call fetch() inside "
                "`async with PageFetcher(config) as fetcher:`"
            )
        session = self._session
        config = self._config

        try:
            current = URL(url)
        except (TypeError, ValueError) as exc:
            return FetchResult(
                url=url, final_url=url, outcome=FetchOutcome.FAILED_PERMANENT, error=_describe(exc)
            )
        if (problem := _unfetchable(current)) is not None:
            return FetchResult(
                url=url, final_url=url, outcome=FetchOutcome.FAILED_PERMANENT, error=problem
            )
        if not config.is_allowed(current):
            return FetchResult(
                url=url,
                final_url=url,
                outcome=FetchOutcome.REFUSED_DOMAIN,
                error=f"host {current.host!r} is outside allowed_domains",
            )
        if (problem := self._refused_address(current)) is not None:
            return FetchResult(
                url=url, final_url=url, outcome=FetchOutcome.REFUSED_ADDRESS, error=problem
            )

        chain: list[str] = []
        seen = {_without_fragment(current)}
        attempts = 0
        retries = 0

        def finish(
            outcome: FetchOutcome,
            *,
            status: int | None = None,
            content_type: str | None = None,
            body: bytes | None = None,
            error: str | None = None,
        ) -> FetchResult:
            return FetchResult(
                url=url,
                final_url=str(current),
                outcome=outcome,
                status=status,
                content_type=content_type,
                body=body,
                redirect_chain=tuple(chain),
                error=error,
                attempts=attempts,
            )

        while True:
            attempts += 1
            hop = await self._request(session, current)

            if isinstance(hop, _Transient):
                if retries >= config.max_retries:
                    return finish(
                        FetchOutcome.FAILED_TRANSIENT_EXHAUSTED,
                        status=hop.status,
                        error=f"{hop.error} (gave up after {attempts} attempts)",
                    )
                retries += 1
                delay = self._retry_delay(retries, hop.retry_after)
                logger.debug(
                    "retry %d/%d of %s in %.3fs after %s",
                    retries,
                    config.max_retries,
                    current,
                    delay,
                    hop.error,
                )
                await anyio.sleep(delay)
                continue

            if isinstance(hop, _Final):
                return finish(
                    hop.outcome,
                    status=hop.status,
                    content_type=hop.content_type,
                    body=hop.body,
                    error=hop.error,
                )

            target = hop.location
            if not config.follow_redirects:
                return finish(
                    FetchOutcome.FAILED_PERMANENT,
                    status=hop.status,
                    error=f"HTTP {hop.status} redirect to {target} not followed "
                    "(follow_redirects is off)",
                )
            chain.append(str(current))
            if (problem := _unfetchable(target)) is not None:
                return finish(
                    FetchOutcome.FAILED_PERMANENT,
                    status=hop.status,
                    error=f"redirect to {target}: {problem}",
                )
            if not config.is_allowed(target):
                return finish(
                    FetchOutcome.REFUSED_DOMAIN,
                    status=hop.status,
                    error=f"redirect to {target} refused: host {target.host!r} is outside "
                    "allowed_domains",
                )
            if (problem := self._refused_address(target)) is not None:
                return finish(
                    FetchOutcome.REFUSED_ADDRESS,
                    status=hop.status,
                    error=f"redirect to {target} refused: {problem}",
                )
            if _without_fragment(target) in seen:
                return finish(
                    FetchOutcome.FAILED_PERMANENT,
                    status=hop.status,
                    error=f"redirect loop: {target} was already visited",
                )
            if len(chain) > config.max_redirects:
                return finish(
                    FetchOutcome.FAILED_PERMANENT,
                    status=hop.status,
                    error=f"too many redirects (more than {config.max_redirects})",
                )
            seen.add(_without_fragment(target))
            current = target

    def _refused_address(self, url: URL) -> str | None:
        """Why ``url``'s IP literal host is refused (names are checked when they resolve)."""
        if not self._config.block_private_addresses or not url.raw_host:
            return None
        return refusal_reason(url.raw_host, self._networks)

    def _retry_delay(self, retry_number: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._config.backoff_max)
        return self._config.backoff_delay(retry_number, self._rng)

    @asynccontextmanager
    async def _slot(self, url: URL) -> AsyncIterator[None]:
        # Host first, then global: a fetch queued behind a busy host must not sit on one of
        # the global slots that fetches for idle hosts could use.
        host = (url.raw_host or "").rstrip(".").lower()
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = _HostSlot(
                anyio.Semaphore(self._config.per_host_concurrency)
            )
        slot.users += 1
        try:
            async with slot.semaphore:
                if self._config.per_host_delay:
                    await self._pace(host)
                async with self._global_slots:
                    yield
        finally:
            slot.users -= 1
            # Forget idle hosts so a crawl over millions of hosts does not grow this dict.
            if slot.users == 0:
                del self._host_slots[host]

    async def _pace(self, host: str) -> None:
        # Reserve this request's start before sleeping (no await in between), so concurrent
        # fetches to one host line up one delay apart.
        now = anyio.current_time()
        start = max(now, self._next_start.get(host, now))
        if len(self._next_start) >= self._prune_at:
            self._next_start = {h: t for h, t in self._next_start.items() if t > now}
            # Amortised: with thousands of hosts all paced, prune again only after doubling.
            self._prune_at = max(_PACED_HOSTS_KEPT, 2 * len(self._next_start))
        self._next_start[host] = start + self._config.per_host_delay
        if start > now:
            await anyio.sleep(start - now)

    async def _request(
        self, session: aiohttp.ClientSession, url: URL
    ) -> _Final | _Redirect | _Transient:
        async with self._slot(url):
            try:
                async with session.get(
                    url,
                    allow_redirects=False,
                    raise_for_status=False,
                    timeout=self._timeout,
                    headers=self._headers,
                ) as response:
                    return await self._read(response)
            except _PERMANENT_CLIENT_ERRORS as exc:
                return _Final(FetchOutcome.FAILED_PERMANENT, error=_describe(exc))
            except (aiohttp.ClientError, TimeoutError) as exc:
                refused = getattr(exc, "os_error", None)  # the resolver's refusal, if it is one
                if isinstance(refused, BlockedAddressError):
                    return _Final(FetchOutcome.REFUSED_ADDRESS, error=refused.strerror)
                return _Transient(_describe(exc))

    async def _read(self, response: aiohttp.ClientResponse) -> _Final | _Redirect | _Transient:
        status = response.status
        content_type = response.headers.get(hdrs.CONTENT_TYPE)

        location = response.headers.get(hdrs.LOCATION)
        if status in _REDIRECT_STATUSES and location:
            try:
                target = response.url.join(URL(location))
            except ValueError as exc:
                return _Final(
                    FetchOutcome.FAILED_PERMANENT,
                    status=status,
                    error=f"invalid redirect Location {location!r}: {exc}",
                )
            return _Redirect(status, target)
        if status == 429 or 500 <= status <= 599:
            retry_after = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
            return _Transient(f"HTTP {status}", status=status, retry_after=retry_after)
        if not 200 <= status <= 299:
            return _Final(
                FetchOutcome.FAILED_PERMANENT,
                status=status,
                content_type=content_type,
                error=f"HTTP {status}",
            )
        # A missing Content-Type reads as application/octet-stream here, so it is skipped too.
        # Leaving the response unread makes aiohttp drop the connection instead of draining it.
        if response.content_type not in HTML_CONTENT_TYPES:
            return _Final(FetchOutcome.SKIPPED_NON_HTML, status=status, content_type=content_type)

        limit = self._config.max_body_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            return _Final(
                FetchOutcome.TOO_LARGE,
                status=status,
                content_type=content_type,
                error=f"Content-Length {declared} exceeds max_body_bytes {limit}",
            )
        if declared is not None and response.headers.get(hdrs.CONTENT_ENCODING) is None:
            # Declared and within the cap: one read (a decoded size can only exceed it when
            # the body is compressed, which goes the streaming way below).
            return _Final(
                FetchOutcome.OK,
                status=status,
                content_type=content_type,
                body=await response.read(),
            )
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK_SIZE):
            body += chunk
            if len(body) > limit:
                return _Final(
                    FetchOutcome.TOO_LARGE,
                    status=status,
                    content_type=content_type,
                    error=f"body exceeds max_body_bytes {limit} "
                    f"(stopped reading after {len(body)} bytes)",
                )
        return _Final(FetchOutcome.OK, status=status, content_type=content_type, body=bytes(body))
