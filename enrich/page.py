"""One page of the enrichment stage: fetch it, extract it, and say what to record.

The single-process stage (:class:`enrich.async_enrichment.AsyncEnrichmentProcessor`) and the
distributed worker (:mod:`enrich.worker`) both call :func:`enrich_page`, so a page gives the
same record whichever of them did it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.to_thread

from enrich.extract import extract_page
from enrich.fetch import FetchOutcome, PageFetcher

__all__ = ["PageResult", "enrich_page", "extraction_limiter"]


@dataclass(frozen=True, slots=True)
class PageResult:
    """What one page gave: an output record (ok), nothing (skipped) or a failed record."""

    url: str
    outcome: Literal["ok", "skipped", "failed"]
    record: dict[str, Any] | None
    error: str | None = None


def extraction_limiter() -> anyio.CapacityLimiter:
    """Threads for extraction: a few keep the cores busy; dozens would only contend for the GIL
    (and for the event loop's time)."""
    return anyio.CapacityLimiter(max(2, os.cpu_count() or 2))


async def enrich_page(fetcher: PageFetcher, url: str, limiter: anyio.CapacityLimiter) -> PageResult:
    """Fetch ``url`` and extract its metadata (in a worker thread, under ``limiter``)."""
    result = await fetcher.fetch(url)
    fetched_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if result.outcome is FetchOutcome.OK and result.body is not None:
        page = await anyio.to_thread.run_sync(
            extract_page, result.final_url, result.body, result.content_type, limiter=limiter
        )
        record: dict[str, Any] = {
            "url": url,
            "final_url": result.final_url,
            "status": result.status,
            "fetched_at": fetched_at,
            **page,
        }
        return PageResult(url, "ok", record)
    if result.outcome is FetchOutcome.SKIPPED_NON_HTML:
        return PageResult(url, "skipped", None)
    failure = {
        "url": url,
        "final_url": result.final_url,
        "status": result.status,
        "outcome": result.outcome.value,
        "error": result.error,
        "attempts": result.attempts,
        "failed_at": fetched_at,
    }
    return PageResult(url, "failed", failure, result.error)
