"""One request of a fetch (a hop) and what its answer means, before any retry or redirect policy.

:func:`send_hop` sends one GET without following redirects; :func:`read_hop` classifies the
response: a redirect (:class:`HopRedirect`), a failure worth retrying (:class:`HopTransient`:
connection errors, timeouts, 429, 5xx, with the server's ``Retry-After``), or a final answer
(:class:`HopFinal`: an HTML body read within ``max_body_bytes``, a skipped non-HTML body, a
permanent error). :class:`enrich.fetch.PageFetcher` applies the policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp
from aiohttp import hdrs
from aiohttp.typedefs import LooseHeaders
from yarl import URL

from enrich.addresses import BlockedAddressError
from enrich.fetch_result import FetchOutcome

__all__ = [
    "HTML_CONTENT_TYPES",
    "Hop",
    "HopFinal",
    "HopRedirect",
    "HopTransient",
    "describe_error",
    "parse_retry_after",
    "read_hop",
    "send_hop",
]

HTML_CONTENT_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE: Final = 64 * 1024
# Failures that a retry cannot fix: a malformed URL, or a TLS certificate/fingerprint problem.
_PERMANENT_CLIENT_ERRORS: Final = (
    aiohttp.InvalidURL,
    aiohttp.ClientSSLError,
    aiohttp.ServerFingerprintMismatch,
)


@dataclass(frozen=True, slots=True)
class HopFinal:
    """A final answer: no retry changes it (the body only with :attr:`FetchOutcome.OK`)."""

    outcome: FetchOutcome
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HopRedirect:
    """A redirect to ``location`` (resolved against the request URL), not yet followed."""

    status: int
    location: URL


@dataclass(frozen=True, slots=True)
class HopTransient:
    """A failure a retry may fix; ``retry_after`` is the server's wish, in seconds."""

    error: str
    status: int | None = None
    retry_after: float | None = None


#: One hop's answer, before the retry and redirect policy is applied.
Hop = HopFinal | HopRedirect | HopTransient


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


def describe_error(exc: BaseException) -> str:
    """``exc`` as one line: its type, and its message when it has one."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def send_hop(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    client_timeout: aiohttp.ClientTimeout,
    headers: LooseHeaders,
    max_body_bytes: int,
) -> Hop:
    """Send one GET for ``url`` (no redirect followed) and say what its answer means."""
    try:
        async with session.get(
            url,
            allow_redirects=False,
            raise_for_status=False,
            timeout=client_timeout,
            headers=headers,
        ) as response:
            return await read_hop(response, max_body_bytes)
    except _PERMANENT_CLIENT_ERRORS as exc:
        return HopFinal(FetchOutcome.FAILED_PERMANENT, error=describe_error(exc))
    except (aiohttp.ClientError, TimeoutError) as exc:
        refused = getattr(exc, "os_error", None)  # the resolver's refusal, if it is one
        if isinstance(refused, BlockedAddressError):
            return HopFinal(FetchOutcome.REFUSED_ADDRESS, error=refused.strerror)
        return HopTransient(describe_error(exc))


async def read_hop(response: aiohttp.ClientResponse, max_body_bytes: int) -> Hop:
    """Classify ``response``: a redirect, a transient failure, or final (with the body if HTML)."""
    status = response.status
    content_type = response.headers.get(hdrs.CONTENT_TYPE)

    location = response.headers.get(hdrs.LOCATION)
    if status in _REDIRECT_STATUSES and location:
        try:
            target = response.url.join(URL(location))
        except ValueError as exc:
            return HopFinal(
                FetchOutcome.FAILED_PERMANENT,
                status=status,
                error=f"invalid redirect Location {location!r}: {exc}",
            )
        return HopRedirect(status, target)
    if status == 429 or 500 <= status <= 599:
        retry_after = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
        return HopTransient(f"HTTP {status}", status=status, retry_after=retry_after)
    if not 200 <= status <= 299:
        return HopFinal(
            FetchOutcome.FAILED_PERMANENT,
            status=status,
            content_type=content_type,
            error=f"HTTP {status}",
        )
    # A missing Content-Type reads as application/octet-stream here, so it is skipped too.
    # Leaving the response unread makes aiohttp drop the connection instead of draining it.
    if response.content_type not in HTML_CONTENT_TYPES:
        return HopFinal(FetchOutcome.SKIPPED_NON_HTML, status=status, content_type=content_type)

    limit = max_body_bytes
    declared = response.content_length
    if declared is not None and declared > limit:
        return HopFinal(
            FetchOutcome.TOO_LARGE,
            status=status,
            content_type=content_type,
            error=f"Content-Length {declared} exceeds max_body_bytes {limit}",
        )
    if declared is not None and response.headers.get(hdrs.CONTENT_ENCODING) is None:
        # Declared and within the cap: one read (a decoded size can only exceed it when
        # the body is compressed, which goes the streaming way below).
        return HopFinal(
            FetchOutcome.OK,
            status=status,
            content_type=content_type,
            body=await response.read(),
        )
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_SIZE):
        body += chunk
        if len(body) > limit:
            return HopFinal(
                FetchOutcome.TOO_LARGE,
                status=status,
                content_type=content_type,
                error=f"body exceeds max_body_bytes {limit} "
                f"(stopped reading after {len(body)} bytes)",
            )
    return HopFinal(FetchOutcome.OK, status=status, content_type=content_type, body=bytes(body))
