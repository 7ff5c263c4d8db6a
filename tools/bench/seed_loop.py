"""The tracker's cost in the loop shape users write (seed 003), against what it replaces.

Four loops over the same items, each with one ``await anyio.lowlevel.checkpoint()`` per item:

- bare: the await and nothing else;
- stand-in: plain Python doing the same bookkeeping (counts, watermark + done-set, last item,
  clock), the least any checkpointing could cost;
- engine: a bare :class:`EnhancedCheckpoint` with defaults (auto-saves on);
- tracker: ``async with AsyncCheckpointTracker(dir, stage)`` with defaults, ``should_skip(i)``
  and ``update(processed=1, successful=1, failed=0, last_item=url, index=i)``.

Runs are noisy on a shared machine, so every variant runs in every round and each figure is
the best of its rounds; costs are compared within one run only. Each loop is timed twice: by
the wall clock, and by the process's CPU time (every thread's, the saver's included), which
other processes' load disturbs much less.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.lowlevel

from common.checkpoint import EnhancedCheckpoint
from common.tracker import AsyncCheckpointTracker

__all__ = ["SeedLoopFigures", "measure_seed_loop"]

_URL = "https://example.edu/page"


class _StandIn:
    """What checkpointing must do at least per item, in plain Python."""

    def __init__(self) -> None:
        self.processed = self.successful = self.failed = 0
        self.watermark = 0
        self.above: set[int] = set()
        self.last_item: str | None = None
        self.last_index: int | None = None
        self.last_time = 0.0

    def should_skip(self, index: int) -> bool:
        return index < self.watermark or index in self.above

    def update(
        self,
        processed: int = 1,
        successful: int = 0,
        failed: int = 0,
        last_item: str | None = None,
        index: int | None = None,
    ) -> None:
        if index is not None:
            if index == self.watermark:
                watermark = index + 1
                above = self.above
                while watermark in above:
                    above.remove(watermark)
                    watermark += 1
                self.watermark = watermark
            else:
                self.above.add(index)
            self.last_index = index
        self.processed += processed
        self.successful += successful
        self.failed += failed
        self.last_item = last_item
        self.last_time = time.time()


async def _bare(n: int) -> tuple[float, float]:
    checkpoint = anyio.lowlevel.checkpoint
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await checkpoint()
    return _per_item(start, cpu, n)


def _per_item(start: float, cpu: float, n: int) -> tuple[float, float]:
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


async def _stand_in(n: int) -> tuple[float, float]:
    checkpoint = anyio.lowlevel.checkpoint
    book = _StandIn()
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        if book.should_skip(i):
            continue
        await checkpoint()
        book.update(processed=1, successful=1, failed=0, last_item=_URL, index=i)
    return _per_item(start, cpu, n)


async def _engine(n: int, directory: Path) -> tuple[float, float]:
    checkpoint = anyio.lowlevel.checkpoint
    engine = EnhancedCheckpoint(directory / "bench.json")
    engine.start(total_items=n)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        if engine.should_skip(i):
            continue
        await checkpoint()
        engine.update(processed=1, successful=1, failed=0, last_item=_URL, index=i)
    elapsed = _per_item(start, cpu, n)
    engine.complete(wait=False)
    await engine.flush_async()
    engine.close()
    return elapsed


async def _tracker(n: int, directory: Path) -> tuple[float, float]:
    checkpoint = anyio.lowlevel.checkpoint
    async with AsyncCheckpointTracker(directory, "bench") as tracker:
        tracker.start(total_items=n)
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            if tracker.should_skip(i):
                continue
            await checkpoint()
            tracker.update(processed=1, successful=1, failed=0, last_item=_URL, index=i)
        elapsed = _per_item(start, cpu, n)
    return elapsed


@dataclass(frozen=True, slots=True)
class SeedLoopFigures:
    """Seconds per item of each loop (best of the rounds): wall clock, and CPU (``cpu_*``)."""

    bare: float
    stand_in: float
    engine: float
    tracker: float
    cpu_bare: float
    cpu_stand_in: float
    cpu_engine: float
    cpu_tracker: float

    def added(self, variant: float) -> float:
        return variant - self.bare

    def cpu_added(self, variant: float) -> float:
        return variant - self.cpu_bare


def measure_seed_loop(n: int, rounds: int) -> SeedLoopFigures:
    """Run the four loops ``rounds`` times, interleaved, on asyncio."""
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-seed-loop-") as tmp:
        for round_ in range(rounds):
            root = Path(tmp) / str(round_)
            (root / "engine").mkdir(parents=True)
            for name, (w, c) in (
                ("bare", anyio.run(_bare, n)),
                ("stand_in", anyio.run(_stand_in, n)),
                ("engine", anyio.run(_engine, n, root / "engine")),
                ("tracker", anyio.run(_tracker, n, root / "tracker")),
            ):
                wall[name] = min(wall.get(name, w), w)
                cpu[name] = min(cpu.get(name, c), c)
    return SeedLoopFigures(**wall, **{f"cpu_{name}": value for name, value in cpu.items()})
