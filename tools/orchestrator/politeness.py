"""Before a polite crawl: robots.txt's ``Crawl-delay``, and the address policy of production.

Scrapy obeys robots.txt's rules but not its ``Crawl-delay``; the orchestrator reads it once
per start host before the crawl stages run and never waits less between two requests.

With ``--block-private-addresses`` (on with ``--env production``) stage 3 refuses private,
loopback and link-local addresses. Stages 1-2 are checked against the same rule before they
start, so a run is refused up front instead of crawling what stage 3 then refuses.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlsplit

from protego import Protego

from enrich.addresses import is_public_address, parse_networks
from tools.orchestrator.config import ConfigError, PipelineConfig

__all__ = ["check_addresses", "robots_crawl_delay"]

_ROBOTS_TIMEOUT = 15.0
_ROBOTS_MAX_BYTES = 512 * 1024


def robots_crawl_delay(start_urls: Sequence[str], user_agent: str) -> float | None:
    """The largest ``Crawl-delay`` the start hosts' robots.txt set for ``user_agent``.

    None when no robots.txt says one (or it cannot be fetched: Scrapy then decides what an
    unreachable robots.txt means, as it does for the rules).
    """
    delays: list[float] = []
    for origin in sorted({_origin(u) for u in start_urls}):
        # http(s) only: PipelineConfig refuses any other scheme.
        request = urllib.request.Request(  # noqa: S310
            origin + "/robots.txt", headers={"User-Agent": user_agent}
        )
        try:
            with urllib.request.urlopen(request, timeout=_ROBOTS_TIMEOUT) as response:  # noqa: S310
                body = response.read(_ROBOTS_MAX_BYTES).decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        # Protego (Scrapy's robots.txt parser): the stdlib's reads whole seconds only.
        delay = Protego.parse(body).crawl_delay(user_agent)
        if delay is not None:
            delays.append(float(delay))
    return max(delays) if delays else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_addresses(config: PipelineConfig) -> None:
    """Refuse start URLs on addresses stage 3 would refuse (``ConfigError`` with the fix)."""
    allowed = parse_networks(config.allow_networks)
    for url in config.start_urls:
        host = urlsplit(url).hostname or ""
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            continue  # unresolvable: discovery reports it, naming the URL
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if not is_public_address(address, allowed):
                raise ConfigError(
                    f"start URL {url} is at {address}, not a public address: with "
                    f"--block-private-addresses (on with --env production) no stage fetches "
                    f"it; add --allow-network {address} to crawl it anyway"
                )
