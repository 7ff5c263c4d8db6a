"""The records the crawl stages write (one JSON line each, keyed by ``url``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DiscoveryRecord:
    """One unique URL found by ``discovery`` (stage1_discovery)."""

    url: str
    depth: int
    referrer: str | None
    status: int | None
    content_type: str | None
    discovered_at: str
    ok: bool
    redirect_to: str | None = None
    error: str | None = None
    #: Seconds from sending the request to the response's headers (Scrapy's
    #: ``download_latency``); ``checkpoint-manager results`` ranks hosts by it.
    download_latency: float | None = None


@dataclass
class ValidationRecord:
    """The check of one discovered URL by ``validation`` (stage2_validation)."""

    url: str
    status: int | None
    ok: bool
    content_type: str | None
    final_url: str | None
    redirect_chain: list[str] = field(default_factory=list)
    error: str | None = None
    checked_at: str = ""
    #: Seconds from sending the (last) request to the response's headers.
    download_latency: float | None = None
