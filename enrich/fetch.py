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

The fetcher applies the retry and redirect policy; one request and what its answer means is
:mod:`enrich.hop`, the slots and pacing :mod:`enrich.slots`, the result :mod:`enrich.fetch_result`.

aiohttp runs on asyncio only, so the fetcher does too; the anyio primitives it uses are
backend-neutral and the event loop is never blocked.
"""

from __future__ import annotations

import enum
import logging
import random
from types import TracebackType
from typing import Self

import aiohttp
import anyio
from aiohttp import hdrs
from yarl import URL

from enrich.addresses import GuardedResolver, refusal_reason
from enrich.config import EnrichmentConfig
from enrich.fetch_result import FetchOutcome, FetchResult
from enrich.hop import (
    HTML_CONTENT_TYPES,
    Hop,
    HopFinal,
    HopTransient,
    describe_error,
    parse_retry_after,
    send_hop,
)
from enrich.slots import RequestSlots

__all__ = [
    "HTML_CONTENT_TYPES",
    "FetchOutcome",
    "FetchResult",
    "PageFetcher",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


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
        self._slots = RequestSlots(self._config)
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
                url=url,
                final_url=url,
                outcome=FetchOutcome.FAILED_PERMANENT,
                error=describe_error(exc),
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

            if isinstance(hop, HopTransient):
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

            if isinstance(hop, HopFinal):
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

    async def _request(self, session: aiohttp.ClientSession, url: URL) -> Hop:
        async with self._slots.slot(url):
            return await send_hop(
                session,
                url,
                client_timeout=self._timeout,
                headers=self._headers,
                max_body_bytes=self._config.max_body_bytes,
            )
