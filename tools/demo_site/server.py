"""Serving a demo site with aiohttp: ``make_app``, ``serve_site``, ``serve_demo_site``.

``GET /__stats`` returns ``{"requests": N, "paths": {path: count}}`` (every request except those
to ``/__stats`` itself); ``POST /__stats/reset`` zeroes the counters, and with ``?transient=1``
re-arms the transient failures.  :mod:`.client` is the client side.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from tools.demo_site.builder import build_site
from tools.demo_site.model import DEFAULT_SLOW_MS, STATS_PATH, DemoSite, PageKind
from tools.demo_site.render import pdf_bytes, png_bytes

__all__ = ["make_app", "serve_demo_site", "serve_site"]


@dataclass
class _ServerState:
    requests: int = 0
    paths: dict[str, int] = field(default_factory=dict)
    failures_served: dict[str, int] = field(default_factory=dict)


_STATE_KEY: Final = web.AppKey("demo_site_state", _ServerState)


def _error_page(status: int, message: str) -> web.Response:
    body = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{status} {message}'
        f"</title></head><body><h1>{message}</h1></body></html>\n"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def _reset_connection(transport: asyncio.Transport) -> None:
    # Linger 0 makes the close an RST: the client sees "connection reset by peer".
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def make_app(
    site: DemoSite,
    *,
    latency_ms: float = 0,
    slow_ms: float = DEFAULT_SLOW_MS,
    robots_ms: float = 0,
) -> web.Application:
    """The aiohttp application serving ``site`` (see the module docstring for the endpoints)."""
    if latency_ms < 0 or slow_ms < 0 or robots_ms < 0:
        raise ValueError("latency_ms, slow_ms and robots_ms must not be negative")
    latency = latency_ms / 1000
    slow = slow_ms / 1000
    robots = robots_ms / 1000
    state = _ServerState()
    app = web.Application()
    app[_STATE_KEY] = state

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": state.requests, "paths": state.paths})

    async def reset_stats(request: web.Request) -> web.Response:
        state.requests = 0
        state.paths = {}
        if request.query.get("transient", "").lower() in ("1", "true", "yes"):
            state.failures_served.clear()
        return web.json_response({"requests": 0, "paths": {}})

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(STATS_PATH):
            return _error_page(404, "Not Found")
        state.requests += 1
        state.paths[path] = state.paths.get(path, 0) + 1
        if latency:
            await asyncio.sleep(latency)
        if path == "/robots.txt":
            if robots:
                await asyncio.sleep(robots)
            return web.Response(text=site.robots_txt(), content_type="text/plain")
        spec = site.pages.get(path)
        base_url = f"{request.scheme}://{request.host}"
        if spec is None:
            return _error_page(404, "Page Not Found")
        if spec.kind is PageKind.REDIRECT:
            location = base_url + spec.redirect_to
            return web.Response(status=spec.redirect_status, headers={"Location": location})
        if spec.kind is PageKind.ERROR:
            return _error_page(500, "Internal Server Error")
        if spec.kind is PageKind.PDF:
            return web.Response(body=pdf_bytes(spec.title), content_type="application/pdf")
        if spec.kind is PageKind.IMAGE:
            png = png_bytes(random.Random(f"{site.seed}:{path}"))
            return web.Response(body=png, content_type="image/png")
        served = state.failures_served.get(path, 0)
        if served < spec.transient_failures:
            state.failures_served[path] = served + 1
            if spec.transient_reset and request.transport is not None:
                _reset_connection(request.transport)
                return web.Response(status=503)  # never sent: the connection is gone
            return _error_page(503, "Service Temporarily Unavailable")
        if spec.slow and slow:
            await asyncio.sleep(slow)
        return web.Response(
            text=site.render_html(path, base_url), content_type="text/html", charset="utf-8"
        )

    app.router.add_get(STATS_PATH, stats)
    app.router.add_post(f"{STATS_PATH}/reset", reset_stats)
    app.router.add_get("/{tail:.*}", serve)
    return app


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping a wildcard bind to a connectable address
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def serve_site(
    site: DemoSite,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    slow_ms: float = DEFAULT_SLOW_MS,
    robots_ms: float = 0,
) -> AsyncIterator[str]:
    """Serve ``site`` in the running event loop; yields the base URL, stops on exit."""
    app = make_app(site, latency_ms=latency_ms, slow_ms=slow_ms, robots_ms=robots_ms)
    # A short shutdown timeout: slow pages in flight must not hold up a stop.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        tcp_site = web.TCPSite(runner, host, port)
        await tcp_site.start()
        bound_port = runner.addresses[0][1]
        yield f"http://{_display_host(host)}:{bound_port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_demo_site(
    pages: int,
    seed: int,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    latency_ms: float = 0,
    slow_ms: float = DEFAULT_SLOW_MS,
) -> AsyncIterator[str]:
    """Build the site for ``(pages, seed)``, serve it in the running loop; yield the base URL."""
    site = build_site(pages, seed)
    async with serve_site(
        site, host=host, port=port, latency_ms=latency_ms, slow_ms=slow_ms
    ) as base_url:
        yield base_url
