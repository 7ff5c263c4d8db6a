"""How long a fetch took, as Scrapy measured it."""

from __future__ import annotations

from scrapy.http import Response

__all__ = ["latency"]


def latency(response: Response) -> float | None:
    """Scrapy's ``download_latency`` (seconds from sending the request to the headers), rounded
    to the millisecond; ``None`` when the response did not come from the downloader."""
    value = response.meta.get("download_latency")
    return round(float(value), 3) if isinstance(value, int | float) else None
