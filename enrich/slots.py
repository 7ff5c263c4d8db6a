"""How many requests a fetcher has in flight, per host and in all, and when each may start.

A request waits for its host's slot (``per_host_concurrency``), then, with ``per_host_delay``,
for its host's next start, then for a global slot (``concurrency``): a request queued behind a
busy or paced host never sits on a global slot that requests to idle hosts could use. Idle hosts
are forgotten, so a crawl over millions of hosts keeps no per-host state for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from yarl import URL

from enrich.config import EnrichmentConfig

__all__ = ["RequestSlots"]


@dataclass(slots=True)
class _HostSlot:
    semaphore: anyio.Semaphore
    users: int = 0


#: Hosts whose next request start is remembered past their last request, before the fetcher
#: forgets those whose time has passed.
_PACED_HOSTS_KEPT = 1024


class RequestSlots:
    """The request slots and per-host pacing of one fetcher, under ``config``'s limits."""

    def __init__(self, config: EnrichmentConfig) -> None:
        self._config = config
        self._global_slots = anyio.Semaphore(config.concurrency)
        self._host_slots: dict[str, _HostSlot] = {}
        # host -> the earliest start of its next request (anyio clock), with per_host_delay.
        self._next_start: dict[str, float] = {}
        self._prune_at = _PACED_HOSTS_KEPT

    @asynccontextmanager
    async def slot(self, url: URL) -> AsyncIterator[None]:
        """Hold a slot for one request to ``url``'s host (its start paced when configured)."""
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
