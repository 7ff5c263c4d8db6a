"""What a fetch gives: :class:`FetchOutcome` (how it ended) and :class:`FetchResult`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["FetchOutcome", "FetchResult"]


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
