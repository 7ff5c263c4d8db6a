"""The client side of the demo site's counters: ``stats(base_url)`` and ``reset(base_url)``.

Blocking (``urllib``), for tests, benchmarks and tools that run outside an event loop.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TypedDict

from tools.demo_site.model import STATS_PATH

__all__ = ["SiteStats", "reset", "stats"]


class SiteStats(TypedDict):
    """What ``GET /__stats`` answers."""

    requests: int
    """Requests served since the last reset (``/__stats`` itself not counted)."""
    paths: dict[str, int]
    """Requests per path (query strings left out)."""


def stats(base_url: str, *, timeout: float = 10.0) -> SiteStats:
    """The site's request counters (``base_url`` with or without its trailing slash)."""
    url = base_url.rstrip("/") + STATS_PATH
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
        data = json.load(response)
    return SiteStats(requests=int(data["requests"]), paths=dict(data["paths"]))


def reset(base_url: str, *, transient: bool = True, timeout: float = 10.0) -> None:
    """Zero the counters; ``transient`` also re-arms the pages whose first requests fail."""
    url = base_url.rstrip("/") + STATS_PATH + "/reset" + ("?transient=1" if transient else "")
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - http only
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http only
        response.read()
