"""The live dashboard behind ``serve``: an aiohttp app, read-only, over one checkpoint directory.

Routes (GET only): ``/`` the page, ``/dashboard.js`` and ``/dashboard.css`` its script and
style (no CDN, no inline script: the page's Content-Security-Policy allows only this origin),
``/api/progress`` every stage as JSON. Each request to ``/api/progress`` reads the checkpoints
afresh, so the numbers are the files' numbers at that moment; a sampler task reads them every
``interval`` seconds to keep each stage's processed count over time (the throughput chart), also
while no browser is watching. Checkpoint reads are blocking file I/O and run in a worker thread,
one at a time; the event loop only serves. Nothing is written: no lock is taken, no file is
created (reading never restores a damaged file; it reports it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from common.errors import CheckpointError
from common.manager import StageInfo, UnifiedCheckpointManager
from common.state import utc_iso
from common.status import CheckpointStatus
from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import Unreadable, read_stages
from tools.checkpoint_cli.render import dashboard_assets

__all__ = ["Dashboard", "make_app"]

#: Points kept per stage: an hour at the default two-second interval.
MAX_POINTS = 1800
_ACTIVE = (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING)
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Dashboard:
    """Reads the checkpoints (in a worker thread) and keeps each stage's processed count over
    time. ``clock`` gives epoch seconds (injectable for tests)."""

    manager: UnifiedCheckpointManager
    interval: float = 2.0
    clock: Callable[[], float] = time.time
    series: dict[str, collections.deque[tuple[float, int]]] = field(default_factory=dict)
    _read_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def read(self) -> tuple[list[StageInfo], list[Unreadable]]:
        """Every stage as the files say now, and those this process may not read (one read at
        a time, off the event loop)."""
        async with self._read_lock:
            return await asyncio.to_thread(read_stages, self.manager)

    def record(self, infos: list[StageInfo], now: float) -> None:
        """Add a point per readable stage (at most one per half interval)."""
        for info in infos:
            snap = info.progress()
            if snap is None:
                continue
            points = self.series.setdefault(info.stage, collections.deque(maxlen=MAX_POINTS))
            if points and now - points[-1][0] < self.interval / 2:
                points[-1] = (points[-1][0], snap.processed)
            else:
                points.append((now, snap.processed))

    async def progress(self) -> dict[str, Any]:
        """The ``/api/progress`` document; ``error`` says which checkpoint files could not be
        read, and why (the other stages are served), or why none could."""
        now = self.clock()
        try:
            infos, unreadable = await self.read()
        except CheckpointError as exc:
            return {
                "checkpoint_dir": str(self.manager.checkpoint_dir),
                "generated_at": utc_iso(now),
                "interval_seconds": self.interval,
                "error": " ".join(str(exc).split()),
                "overall_progress": 0.0,
                "stages": [],
            }
        self.record(infos, now)
        document: dict[str, Any] = {
            "checkpoint_dir": str(self.manager.checkpoint_dir),
            "generated_at": utc_iso(now),
            "interval_seconds": self.interval,
            "overall_progress": round(self.manager.overall_progress(infos), 3),
            "stages": [self._stage(info, now) for info in infos],
        }
        if unreadable:
            document["error"] = "; ".join(u.line.removeprefix("error: ") for u in unreadable)
        return document

    def _stage(self, info: StageInfo, now: float) -> dict[str, Any]:
        points = list(self.series.get(info.stage, ()))
        entry: dict[str, Any] = {
            "stage": info.stage,
            "status": info.status,
            "live": info.live,
            "error": info.error,
            "series": [[round(t, 3), n] for t, n in points],
        }
        snap = info.progress()
        if info.state is None or snap is None:
            return entry
        completed = info.state.status is CheckpointStatus.COMPLETED
        entry.update(
            processed=snap.processed,
            total=snap.total,
            successful=snap.successful,
            failed=snap.failed,
            skipped=snap.skipped,
            percent=round(100.0 if completed and snap.total <= 0 else snap.percent, 3),
            progress_text=render.progress_text(info),
            success_rate=render.success_text(snap),
            throughput=round(snap.throughput, 3),
            recent_throughput=(
                _recent_rate(points, now, window=max(30.0, 5 * self.interval))
                if info.state.status in _ACTIVE
                else None
            ),
            eta_seconds=render.eta_seconds_of(info),
            eta=render.eta_text(info),
            updated_at=info.state.updated_at,
            last_error=info.state.error_message,
        )
        return entry

    async def sample_forever(self) -> None:
        """Read every stage each ``interval`` seconds (the chart's points), until cancelled."""
        while True:
            infos, _ = await self.read()
            self.record(infos, self.clock())
            await asyncio.sleep(self.interval)


def _recent_rate(points: list[tuple[float, int]], now: float, *, window: float) -> float | None:
    """Items per second over the last ``window`` seconds of samples; None with fewer than two."""
    recent = [p for p in points if p[0] >= now - window]
    if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
        return None
    return round((recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0]), 3)


def make_app(dashboard: Dashboard) -> web.Application:
    """The dashboard's aiohttp application (GET routes only)."""

    async def page(request: web.Request) -> web.Response:
        body = dashboard_assets.page(
            location=str(dashboard.manager.checkpoint_dir),
            interval_ms=int(dashboard.interval * 1000),
        )
        return web.Response(text=body, content_type="text/html", headers=_SECURITY_HEADERS)

    async def script(request: web.Request) -> web.Response:
        return web.Response(
            text=dashboard_assets.SCRIPT,
            content_type="application/javascript",
            headers=_SECURITY_HEADERS,
        )

    async def style(request: web.Request) -> web.Response:
        return web.Response(
            text=dashboard_assets.STYLE, content_type="text/css", headers=_SECURITY_HEADERS
        )

    async def progress(request: web.Request) -> web.Response:
        return web.json_response(await dashboard.progress(), headers=_SECURITY_HEADERS)

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(dashboard.sample_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/dashboard.js", script)
    app.router.add_get("/dashboard.css", style)
    app.router.add_get("/api/progress", progress)
    app.cleanup_ctx.append(sampler)
    return app
