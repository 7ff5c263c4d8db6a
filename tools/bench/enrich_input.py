"""Stage 3's input, streamed three ways: which keeps the event loop free and finishes first.

Run by ``python -m tools.bench enrich`` (``--input-lines N``; 0 skips it). One pass over a
stage-2 output of N records (select the valid HTML pages, drop repeats), the way stage 3 reads
while its workers fetch, with a 1 ms sleeper on the loop measuring how long the loop was held:

- ``worker thread, 512 URLs a hop``: :class:`enrich.url_source.JsonlUrls` read in batches through
  ``anyio.to_thread.run_sync`` (what the stage does, after its scan, which is not timed);
- ``aiofiles, a line a hop``: ``async for line in aiofiles.open(...)``, parsing on the loop (what
  a direct port to aiofiles looks like);
- ``aiofiles, 1 MiB a hop``: ``await f.read(1 MiB)``, splitting and parsing on the loop (the
  fewest thread hops aiofiles allows, at the price of parsing on the loop).

The aiofiles ways keep every page key in a set (memory grows with the input); the stage's scan
keeps 16 bytes a URL instead.

Figures: wall time, thread hops, the loop thread's CPU time, the longest the sleeper waited.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiofiles
import anyio.to_thread

from enrich.same_page import DEFAULT_DIRECTORY_INDEX, page_key_function
from enrich.url_source import JsonlUrls, valid_page_url

_CHUNK = 1 << 20


def write_input(path: Path, lines: int) -> None:
    """``lines`` stage-2 records, 1 in 10 repeated, 1 in 20 not HTML."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(lines):
            n = i - 1 if i % 10 == 9 else i
            record = {
                "url": f"https://www.example.edu/section-{n % 97}/page-{n}/",
                "status": 200,
                "ok": True,
                "content_type": "application/pdf" if n % 20 == 7 else "text/html; charset=utf-8",
                "final_url": f"https://www.example.edu/section-{n % 97}/page-{n}/",
                "redirect_chain": [],
                "error": None,
            }
            handle.write(json.dumps(record) + "\n")


def _scanned(path: Path) -> JsonlUrls:
    source = JsonlUrls.valid_pages(path, same_page=page_key_function(DEFAULT_DIRECTORY_INDEX))
    source.scan()  # as the stage does before it starts: the repeats are known
    return source


async def _thread_batches(source: JsonlUrls) -> tuple[int, int]:
    batches = source.batches()
    count = hops = 0
    while (batch := await anyio.to_thread.run_sync(next, batches, None)) is not None:
        hops += 1
        count += len(batch)
    return count, hops + 1


async def _aiofiles_lines(path: Path) -> tuple[int, int]:
    key = page_key_function(DEFAULT_DIRECTORY_INDEX)
    seen: set[str] = set()
    count = hops = 0
    async with aiofiles.open(path, encoding="utf-8") as handle:
        async for line in handle:
            hops += 1
            if not line.strip():
                continue
            url = valid_page_url(json.loads(line))
            if url is not None and (page := key(url)) not in seen:
                seen.add(page)
                count += 1
    return count, hops + 1


async def _aiofiles_chunks(path: Path) -> tuple[int, int]:
    key = page_key_function(DEFAULT_DIRECTORY_INDEX)
    seen: set[str] = set()
    count = hops = 0
    rest = ""
    async with aiofiles.open(path, encoding="utf-8") as handle:
        while True:
            chunk = await handle.read(_CHUNK)
            hops += 1
            lines = (rest + chunk).split("\n")
            rest = lines.pop()
            for line in lines:
                if not line.strip():
                    continue
                url = valid_page_url(json.loads(line))
                if url is not None and (page := key(url)) not in seen:
                    seen.add(page)
                    count += 1
            if not chunk:
                return count, hops


async def _measured(read: Callable[[Any], Awaitable[tuple[int, int]]], path: Path) -> list[float]:
    # Untimed: the stage's scan (two passes) runs before it reads to feed its workers.
    source = await anyio.to_thread.run_sync(_scanned, path) if read is _thread_batches else path
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = asyncio.Event()

    async def sleeper() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - before - 0.001)

    probe = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    cpu, wall = time.thread_time(), time.perf_counter()
    count, hops = await read(source)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    done.set()
    await probe
    return [wall, cpu, max(lags, default=0.0), float(hops), float(count)]


def run(lines: int, rounds: int) -> None:
    """Print the three ways' figures (best of ``rounds`` each, interleaved)."""
    ways: list[tuple[str, Callable[[Any], Awaitable[tuple[int, int]]]]] = [
        ("worker thread, 512 URLs a hop", _thread_batches),
        ("aiofiles, a line a hop", _aiofiles_lines),
        ("aiofiles, 1 MiB a hop", _aiofiles_chunks),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-enrich-input-") as tmp:
        path = Path(tmp) / "validation_output.jsonl"
        write_input(path, lines)
        size = path.stat().st_size
        best: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, read in ways:
                figures = asyncio.run(_measured(read, path))
                if name not in best or figures[0] < best[name][0]:
                    best[name] = figures
    counts = {int(f[4]) for f in best.values()}
    assert len(counts) == 1, f"the three ways disagree on the pages: {best}"
    print(
        f"\nstage 3 input, one streamed pass: {lines:,} records ({size / 2**20:.1f} MiB), "
        f"{counts.pop():,} pages; best of {rounds}"
    )
    print(f"  {'way':32} {'wall':>8} {'hops':>8} {'loop CPU':>9} {'longest loop hold':>18}")
    base = best[ways[0][0]][0]
    for name, _ in ways:
        wall, cpu, lag, hops, _count = best[name]
        print(
            f"  {name:32} {wall:7.2f}s {int(hops):8,} {cpu:8.2f}s {lag * 1000:15.1f} ms"
            f"   ({wall / base:.2f}x)"
        )
