"""Benchmarks, run on demand; every figure is printed against a baseline measured in the same run.

    python -m tools.bench engine      # update() cost, save latency vs items done, load time
    python -m tools.bench tracker     # tracker overhead on an async loop, event-loop stalls

Nothing here is asserted by the test suite: speed is measured, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common.atomic import atomic_write_bytes
from common.checkpoint import EnhancedCheckpoint


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
                f"{kind:>5}s: {size:>9,} done",
                f"{ours * 1e3:.2f} ms",
                f"{baseline * 1e3:.2f} ms",
                ours / baseline,
            )
        flatness = results[-1][1] / results[0][1]
        print(f"  {kind}s: save at {sizes[-1]:,} / save at {sizes[0]:,} = {flatness:.2f}x")


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
            f"{kind}s: load + first check",
            f"{ours * 1e3:.1f} ms",
            f"{base * 1e3:.1f} ms",
            ours / base,
        )


def run_engine(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        directory = Path(tmp)
        bench_update(directory, args.updates)
        bench_saves(directory, [1_000, 100_000, 1_000_000] if not args.quick else [1_000, 10_000])
        bench_load(directory, 1_000_000 if not args.quick else 10_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="checkpoint engine: update, save, load")
    engine.add_argument("--updates", type=int, default=1_000_000)
    engine.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores")
    if args.command == "engine":
        run_engine(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
