"""Benchmarks, run on demand; every figure is printed against a baseline measured in the same run.

    python -m tools.bench engine      # update() cost, save latency vs items done, load time
    python -m tools.bench tracker     # tracker overhead on an async loop, event-loop stalls
    python -m tools.bench enrich      # enrichment throughput vs a bare aiohttp loop; its input
                                      # streamed by a worker thread vs aiofiles
    python -m tools.bench pipeline    # whole pipeline: checkpointing on vs off; uninterrupted
                                      # vs five SIGKILLs (:mod:`tools.bench.pipeline`)

Nothing here is asserted by the test suite: speed is measured, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.checkpoint import EnhancedCheckpoint
from common.io.atomic import atomic_write_bytes
from tools.bench.save_cost import print_save_cpu

_PLURAL = {"index": "indices", "key": "keys"}


def _best_of(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def _row(name: str, value: str, baseline: str, ratio: float | None) -> None:
    ratio_text = f"{ratio:8.2f}x" if ratio is not None else "        -"
    print(f"  {name:<44} {value:>14}   baseline {baseline:>14}   {ratio_text}")


# Engine ---------------------------------------------------------------------------------------


class _BareCounter:
    """The baseline for update(): the same call shape doing only the bookkeeping of counts."""

    def __init__(self) -> None:
        self.processed = self.successful = 0
        self.last_item: str | None = None
        self.last_index: int | None = None

    def update(
        self,
        processed: int = 1,
        successful: int = 0,
        failed: int = 0,
        skipped: int = 0,
        last_item: str | None = None,
        index: int | None = None,
    ) -> None:
        self.processed += processed
        self.successful += successful
        self.last_item = last_item
        self.last_index = index


def bench_update(directory: Path, n: int) -> None:
    print(f"update() cost, {n:,} updates with index, auto_save_interval=10 (saves on)")

    def bare() -> float:
        counter = _BareCounter()
        start = time.perf_counter()
        for i in range(n):
            counter.update(1, 1, 0, 0, "https://example.edu/page", i)
        return (time.perf_counter() - start) / n

    def engine() -> float:
        stage_dir = Path(tempfile.mkdtemp(dir=directory))
        checkpoint = EnhancedCheckpoint(stage_dir / "bench.json", auto_save_interval=10)
        checkpoint.start(total_items=n)
        update = checkpoint.update
        start = time.perf_counter()
        for i in range(n):
            update(1, 1, 0, 0, "https://example.edu/page", i)
        elapsed = time.perf_counter() - start
        checkpoint.complete()
        checkpoint.close()
        return elapsed / n

    base = _best_of(3, bare)
    ours = _best_of(3, engine)
    _row("update() per call", f"{ours * 1e6:.3f} us", f"{base * 1e6:.3f} us", ours / base)
    print(f"  added cost per update: {(ours - base) * 1e6:.3f} us")


def _seed000_full_rewrite(path: Path, ids: list[str]) -> float:
    """Seed 000's way: the whole processed_ids list rewritten on every save."""
    start = time.perf_counter()
    data = json.dumps({"processed_ids": ids, "samples_processed": len(ids)}).encode()
    atomic_write_bytes(path, data, temp_path=path.with_name(path.name + ".tmp"))
    return time.perf_counter() - start


def bench_saves(directory: Path, sizes: list[int]) -> None:
    print("save latency with N items done (each save adds 100 new items)")
    for kind in ("index", "key"):
        results: list[tuple[int, float, float]] = []
        for size in sizes:
            stage_dir = Path(tempfile.mkdtemp(dir=directory))
            checkpoint = EnhancedCheckpoint(
                stage_dir / "bench.json", auto_save_interval=10**9, save_every_seconds=1e9
            )
            checkpoint.start(total_items=size + 10_000)
            keys = [f"https://example.edu/page/{i}" for i in range(size)]
            for i in range(size):
                if kind == "index":
                    checkpoint.update(1, 1, index=i)
                else:
                    checkpoint.update(1, 1, key=keys[i])
            checkpoint.save(force=True)
            samples = []
            for round_ in range(15):
                for j in range(100):
                    i = size + round_ * 100 + j
                    if kind == "index":
                        checkpoint.update(1, 1, index=i)
                    else:
                        checkpoint.update(1, 1, key=f"https://example.edu/page/{i}")
                start = time.perf_counter()
                checkpoint.save(force=True)
                samples.append(time.perf_counter() - start)
            checkpoint.close()
            baseline = statistics.median(
                _seed000_full_rewrite(stage_dir / "seed000.json", keys) for _ in range(3)
            )
            results.append((size, statistics.median(samples), baseline))
        for size, ours, baseline in results:
            _row(
                f"{_PLURAL[kind]:>7}: {size:>9,} done",
                f"{ours * 1e3:.2f} ms",
                f"{baseline * 1e3:.2f} ms",
                ours / baseline,
            )
        flatness = results[-1][1] / results[0][1]
        print(f"  {_PLURAL[kind]}: save at {sizes[-1]:,} / save at {sizes[0]:,} = {flatness:.2f}x")


def bench_load(directory: Path, size: int) -> None:
    print(f"resume (load) time with {size:,} items done")
    for kind in ("index", "key"):
        stage_dir = Path(tempfile.mkdtemp(dir=directory))
        checkpoint = EnhancedCheckpoint(
            stage_dir / "bench.json", auto_save_interval=10**9, save_every_seconds=1e9
        )
        checkpoint.start(total_items=size)
        keys = [f"https://example.edu/page/{i}" for i in range(size)]
        for i in range(size):
            if kind == "index":
                checkpoint.update(1, 1, index=i)
            else:
                checkpoint.update(1, 1, key=keys[i])
        checkpoint.pause()
        checkpoint.close()

        def load(stage_dir: Path = stage_dir, kind: str = kind, keys: list[str] = keys) -> float:
            start = time.perf_counter()
            resumed = EnhancedCheckpoint(stage_dir / "bench.json")
            assert resumed.should_skip(size - 1) if kind == "index" else True
            if kind == "key":
                assert resumed.is_key_done(keys[-1])
            elapsed = time.perf_counter() - start
            resumed.close()
            return elapsed

        def read_raw(stage_dir: Path = stage_dir) -> float:
            # Baseline: just reading the bytes of the files a resume needs.
            start = time.perf_counter()
            for path in stage_dir.iterdir():
                if path.is_file():
                    path.read_bytes()
            return time.perf_counter() - start

        ours = _best_of(3, load)
        base = _best_of(3, read_raw)
        _row(
            f"{_PLURAL[kind]}: load + first check",
            f"{ours * 1e3:.1f} ms",
            f"{base * 1e3:.1f} ms",
            ours / base,
        )


def run_engine(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        directory = Path(tmp)
        bench_update(directory, args.updates)
        print_save_cpu(300 if not args.quick else 30)
        bench_saves(directory, [1_000, 100_000, 1_000_000] if not args.quick else [1_000, 10_000])
        bench_load(directory, 1_000_000 if not args.quick else 10_000)


# Tracker ----------------------------------------------------------------------------------


class _StallProbe:
    """Measures the longest time the event loop failed to wake a 1 ms sleeper."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.running = True

    async def run(self) -> None:
        import anyio

        while self.running:
            before = anyio.current_time()
            await anyio.sleep(0.001)
            self.worst = max(self.worst, anyio.current_time() - before - 0.001)


async def _io_loop(n: int, concurrency: int, tracker: Any | None) -> tuple[float, float, float]:
    """n items that each await ~1 ms, `concurrency` at a time; returns (seconds, worst stall,
    the process's CPU seconds: every thread's, the saver's included)."""
    import anyio

    probe = _StallProbe()
    counter = _BareCounter()
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            if tracker is not None and tracker.should_skip(i):
                continue
            await anyio.sleep(0.001)
            if tracker is not None:
                tracker.update(processed=1, successful=1, last_item="u", index=i)
            else:
                counter.update(1, 1, 0, 0, "u", i)

    start, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as outer:
        outer.start_soon(probe.run)
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        probe.running = False
    return time.perf_counter() - start, probe.worst, time.process_time() - cpu


def run_tracker(args: argparse.Namespace) -> None:
    import anyio

    from common.tracker import AsyncCheckpointTracker

    n: int = args.items

    async def bare_io() -> tuple[float, float, float]:
        return await _io_loop(n, args.concurrency, None)

    async def tracked_io(directory: Path) -> tuple[float, float, float]:
        async with AsyncCheckpointTracker(directory, "bench", progress_log_every=0) as tracker:
            tracker.start(total_items=n)
            result = await _io_loop(n, args.concurrency, tracker)
        return result

    async def bare_nothing() -> float:
        counter = _BareCounter()
        start = time.perf_counter()
        for i in range(n):
            counter.update(1, 1, 0, 0, "u", i)
        return (time.perf_counter() - start) / n

    async def tracked_nothing(directory: Path) -> float:
        async with AsyncCheckpointTracker(directory, "bench", progress_log_every=0) as tracker:
            tracker.start(total_items=n)
            update = tracker.update
            start = time.perf_counter()
            for i in range(n):
                update(1, 1, 0, 0, "u", i)
            elapsed = time.perf_counter() - start
        return elapsed / n

    print(f"tracker, {n:,} items, default auto-save (every 10 updates), asyncio")
    _print_seed_loop(n, args.rounds + 1)
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp:
        results = []
        for round_ in range(args.rounds):
            base = anyio.run(bare_io)
            ours = anyio.run(tracked_io, Path(tmp) / f"io{round_}")
            results.append((base, ours))
        base_time = min(r[0][0] for r in results)
        our_time = min(r[1][0] for r in results)
        _row(
            f"items awaiting 1 ms, {args.concurrency} at a time",
            f"{our_time:.3f} s",
            f"{base_time:.3f} s",
            our_time / base_time,
        )
        # Its CPU (all threads): steadier than the wall clock when other jobs share the machine.
        base_cpu = min(r[0][2] for r in results)
        our_cpu = min(r[1][2] for r in results)
        _row(
            f"items awaiting 1 ms, {args.concurrency} at a time, CPU",
            f"{our_cpu:.3f} s",
            f"{base_cpu:.3f} s",
            our_cpu / base_cpu,
        )
        _row(
            "longest event-loop stall during the run",
            f"{max(r[1][1] for r in results) * 1e3:.2f} ms",
            f"{max(r[0][1] for r in results) * 1e3:.2f} ms",
            None,
        )

        async def timed_checkpoint_calls(directory: Path) -> float:
            return await _timed_checkpoint_run(directory, n, args.concurrency)

        base_per = min(anyio.run(bare_nothing) for _ in range(3))
        our_per = min(anyio.run(tracked_nothing, Path(tmp) / f"n{i}") for i in range(3))
        _row(
            "items that do nothing, per item",
            f"{our_per * 1e6:.3f} us",
            f"{base_per * 1e6:.3f} us",
            our_per / base_per,
        )
        print(f"  added cost per item: {(our_per - base_per) * 1e6:.3f} us")
        longest = anyio.run(timed_checkpoint_calls, Path(tmp) / "timed")
        _row(
            "longest checkpoint call on the loop thread",
            f"{longest * 1e3:.3f} ms",
            "-",
            None,
        )
        print(
            "  (every update() and tick() of the 1 ms loop timed one by one, auto-saves included)"
        )


def _print_seed_loop(n: int, rounds: int) -> None:
    """Seed 003's loop shape: one await per item, should_skip + update, defaults on."""
    from tools.bench.seed_loop import measure_seed_loop

    figures = measure_seed_loop(n, rounds)
    print(f"  seed-003 loop, one await per item, best of {rounds} interleaved rounds:")
    _row("bare loop (await only), per item", f"{figures.bare * 1e6:.2f} us", "-", None)
    _rows_against_stand_in(
        (
            ("plain-Python stand-in, added per item", figures.stand_in),
            ("bare EnhancedCheckpoint, added per item", figures.engine),
            ("AsyncCheckpointTracker, added per item", figures.tracker),
        ),
        figures.added,
    )
    # CPU time (all threads): what the loop costs the machine, less disturbed by other load.
    _row("bare loop, CPU per item", f"{figures.cpu_bare * 1e6:.2f} us", "-", None)
    _rows_against_stand_in(
        (
            ("stand-in, CPU added per item", figures.cpu_stand_in),
            ("EnhancedCheckpoint, CPU added per item", figures.cpu_engine),
            ("AsyncCheckpointTracker, CPU added per item", figures.cpu_tracker),
        ),
        figures.cpu_added,
    )


def _rows_against_stand_in(
    rows: tuple[tuple[str, float], ...], added_over_bare: Callable[[float], float]
) -> None:
    """One row per variant: what it adds to the bare loop, as a ratio of the stand-in's (the
    first row) addition."""
    stand_in = added_over_bare(rows[0][1])
    for name, value in rows:
        added = added_over_bare(value)
        _row(
            name,
            f"{added * 1e6:.2f} us",
            f"{stand_in * 1e6:.2f} us",
            added / stand_in if stand_in > 0 else None,
        )


async def _timed_checkpoint_run(directory: Path, n: int, concurrency: int) -> float:
    """The 1 ms loop again with every checkpoint call made on the loop thread timed: the stall
    checkpointing itself causes, apart from the machine's own (the stall probe sees both)."""

    from common.tracker import AsyncCheckpointTracker

    longest = 0.0

    def timed(call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal longest
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                longest = max(longest, time.perf_counter() - began)

        return wrapper

    async with AsyncCheckpointTracker(directory, "bench", progress_log_every=0) as tracker:
        checkpoint = tracker.checkpoint
        checkpoint.tick = timed(checkpoint.tick)  # type: ignore[method-assign]
        checkpoint.update = timed(checkpoint.update)  # type: ignore[method-assign]
        # The tracker holds the engine's bound update() since it was entered: time that one.
        vars(tracker)["update"] = checkpoint.update
        tracker.start(total_items=n)
        await _io_loop(n, concurrency, tracker)
    return longest


# Enrichment ------------------------------------------------------------------------------


def run_enrich(args: argparse.Namespace) -> None:
    import asyncio

    import aiohttp

    from enrich.async_enrichment import AsyncEnrichmentProcessor
    from enrich.config import EnrichmentConfig
    from enrich.extract import extract_page
    from tools.demo_site import build_site, start_demo_site_process, stop_demo_site_process

    pages = args.pages
    process, base_url = start_demo_site_process(pages, 5, stderr=subprocess.DEVNULL)
    try:
        site = build_site(pages, 5)
        urls = sorted(site.expected_ok_urls(base_url))
        # Slow and transient pages measure the site, not the client: leave them out.
        skip = {base_url + p for p in (*site.slow_paths(), *site.transient_paths())}
        urls = [u for u in urls if u not in skip]
        concurrency = args.concurrency

        async def bare(directory: Path) -> float:
            # What a script without the toolkit does: fetch, extract, append a JSON line.
            todo = iter(urls)
            connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
            directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before timing
            async with aiohttp.ClientSession(connector=connector) as session:
                with (directory / "bare.jsonl").open("a", encoding="utf-8") as output:

                    async def worker() -> None:
                        for url in todo:
                            async with session.get(url) as response:
                                body = await response.read()
                                content_type = response.headers.get("Content-Type")
                                status = response.status
                            page = await asyncio.to_thread(extract_page, url, body, content_type)
                            record = {"url": url, "status": status, **page}
                            output.write(json.dumps(record, ensure_ascii=False) + "\n")

                    start = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                    return len(urls) / (time.perf_counter() - start)

        async def ours(directory: Path) -> float:
            config = EnrichmentConfig(
                concurrency=concurrency,
                per_host_concurrency=concurrency,
                allowed_domains=("127.0.0.1",),
            )
            processor = AsyncEnrichmentProcessor(
                directory / "out.jsonl", checkpoint_dir=directory / "cp", config=config
            )
            start = time.perf_counter()
            async with processor:
                await processor.process_urls(urls)
            return len(urls) / (time.perf_counter() - start)

        print(f"enrichment of {len(urls):,} demo-site pages, concurrency {concurrency}")
        with tempfile.TemporaryDirectory(prefix="bench-enrich-") as tmp:
            rates = [
                (asyncio.run(bare(Path(tmp) / f"b{i}")), asyncio.run(ours(Path(tmp) / f"r{i}")))
                for i in range(args.rounds)
            ]
        base_rate = max(r[0] for r in rates)
        our_rate = max(r[1] for r in rates)
        _row(
            "pages/s (fetch + extract + write)",
            f"{our_rate:,.0f}/s",
            f"{base_rate:,.0f}/s",
            our_rate / base_rate,
        )
    finally:
        stop_demo_site_process(process)
    if args.input_lines:
        from tools.bench.enrich_input import run as run_input

        run_input(args.input_lines, max(args.rounds, 3))


def main(argv: list[str] | None = None) -> int:
    from tools.bench import pipeline as pipeline_bench

    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="checkpoint engine: update, save, load")
    engine.add_argument("--updates", type=int, default=1_000_000)
    engine.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    tracker = sub.add_parser("tracker", help="AsyncCheckpointTracker around an async loop")
    tracker.add_argument("--items", type=int, default=100_000)
    tracker.add_argument("--concurrency", type=int, default=20)
    tracker.add_argument("--rounds", type=int, default=2)
    enrich = sub.add_parser("enrich", help="enrichment vs a bare aiohttp loop")
    enrich.add_argument("--pages", type=int, default=3000)
    enrich.add_argument("--concurrency", type=int, default=64)
    enrich.add_argument("--rounds", type=int, default=2)
    enrich.add_argument(
        "--input-lines",
        type=int,
        default=100_000,
        help="stage-2 records for the input-streaming comparison (0 skips it)",
    )
    pipeline = sub.add_parser(
        "pipeline", help="whole pipeline: checkpointing on vs off; uninterrupted vs SIGKILLs"
    )
    pipeline_bench.add_arguments(pipeline)
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores")
    if args.command == "engine":
        run_engine(args)
    elif args.command == "tracker":
        run_tracker(args)
    elif args.command == "enrich":
        run_enrich(args)
    elif args.command == "pipeline":
        pipeline_bench.run_pipeline(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
