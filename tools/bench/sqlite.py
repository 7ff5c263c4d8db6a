"""Benchmark the SQLite store against the JSON store on a keyed done-set of 1M URLs.

    python -m tools.bench sqlite [--keys 1000000] [--lookups 50000] [--more 10000]

For each store a stage is built with ``--keys`` URLs marked done (``update(key=url)``), then a
fresh process reopens it and measures: the reopen (load + lock + whatever the store reads to
answer ``is_key_done``), the heap that adds (anonymous resident memory after the reopen), lookups of done and not-done keys, and the
cost of marking ``--more`` keys done and saving (ledger off: the done-set alone; a last build
adds a ledger row per key). Every SQLite figure is printed as a ratio
against the JSON store's, measured in the same run. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common.checkpoint import EnhancedCheckpoint

STAGE = "bench_keys"


def _url(i: int) -> str:
    return f"https://www.example.edu/section-{i % 97}/page-{i}.html"


def _heap_mib() -> float:
    """Anonymous resident memory of this process (Linux ``RssAnon``): the heap, not the page
    cache that SQLite's memory-mapped reads show as resident file pages."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(kind: str, directory: Path, keys: int, *, ledger: bool = False) -> float:
    """Mark ``keys`` URLs done in one run; returns seconds per key (updates and saves)."""
    checkpoint = EnhancedCheckpoint(
        directory / f"{STAGE}.json",
        store=kind,
        auto_save_interval=10_000,
        min_save_interval=0.5,
        ledger=ledger,
    )
    try:
        checkpoint.start(STAGE, total_items=keys)
        began = time.perf_counter()
        for i in range(keys):
            checkpoint.update(processed=1, successful=1, key=_url(i))
        checkpoint.save()
        elapsed = time.perf_counter() - began
        checkpoint.pause()
    finally:
        checkpoint.close()
    return elapsed / keys


def measure(kind: str, directory: Path, keys: int, lookups: int, more: int) -> dict[str, Any]:
    """In a fresh process: reopen, memory, lookups, update+save on top of ``keys`` done."""
    rss_before = _heap_mib()
    began = time.perf_counter()
    checkpoint = EnhancedCheckpoint(directory / f"{STAGE}.json", store=kind, ledger=False)
    try:
        checkpoint.acquire()
        checkpoint.is_key_done("")  # whatever the store needs to answer lookups
        reopen = time.perf_counter() - began
        rss_after = _heap_mib()
        rng = random.Random(7)
        hits = [_url(rng.randrange(keys)) for _ in range(lookups)]
        misses = [_url(keys + rng.randrange(keys)) for _ in range(lookups)]
        began = time.perf_counter()
        assert all(checkpoint.is_key_done(k) for k in hits)
        hit = (time.perf_counter() - began) / lookups
        began = time.perf_counter()
        assert not any(checkpoint.is_key_done(k) for k in misses)
        miss = (time.perf_counter() - began) / lookups
        checkpoint.start(STAGE, total_items=keys + more + 1000)
        began = time.perf_counter()
        for i in range(keys, keys + more):
            checkpoint.update(processed=1, successful=1, key=_url(i))
        checkpoint.save()
        per_key = (time.perf_counter() - began) / more
        saves = []
        for round_ in range(10):
            for i in range(100):
                checkpoint.update(processed=1, successful=1, key=f"extra-{round_}-{i}")
            began = time.perf_counter()
            checkpoint.save()
            saves.append(time.perf_counter() - began)
        checkpoint.pause()
    finally:
        checkpoint.close()
    return {
        "reopen_s": reopen,
        "rss_added_mib": rss_after - rss_before,
        "hit_us": hit * 1e6,
        "miss_us": miss * 1e6,
        "update_save_us": per_key * 1e6,
        "save_100_ms": statistics.median(saves) * 1e3,
    }


def ledger_queries(directory: Path, items: int) -> list[tuple[str, float, float, str]]:
    """Register ``items``, finish half of them (one in ten of those failed), then time the
    queries against the same figures computed in Python over the rows held in a list (the
    baseline; for ``register``, building that list)."""
    from collections import Counter

    from common.ledger import Ledger, LedgerEntry
    from common.state import CheckpointState
    from common.stores.base import StagedRows
    from common.stores.sqlite import SqliteStore

    store = SqliteStore(directory)
    ledger = Ledger(store, STAGE, worker_id="w")
    keys = [_url(i) for i in range(items)]
    began = time.perf_counter()
    ledger.register(keys)
    register = time.perf_counter() - began
    entries = [
        LedgerEntry(
            k,
            "failed" if i % 20 == 0 else "done",
            f"w{i % 4}",
            1 + i % 3,
            "HTTP 500" if i % 20 == 0 else None,
            1.0,
        )
        for i, k in enumerate(keys)
        if i % 2 == 0
    ]
    store.save(STAGE, CheckpointState(stage=STAGE).to_dict(), StagedRows(ledger=entries))
    rows: dict[str, tuple[str, str | None, int, str | None]] = {
        k: ("pending", None, 0, None) for k in keys
    }
    for e in entries:
        rows[e.key] = (e.status, e.worker_id, e.attempts, e.error)
    table = list(rows.items())

    def timed(fn: Any) -> float:
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began

    def py_statistics() -> None:
        Counter(r[0] for _, r in table)
        Counter((r[1], r[0]) for _, r in table if r[0] != "pending")
        Counter(r[2] for _, r in table if r[0] != "pending")
        Counter(r[3] for _, r in table if r[0] == "failed")

    figures = [
        ("statistics()", timed(ledger.statistics) * 1e3, timed(py_statistics) * 1e3, "ms"),
        (
            "count_remaining()",
            timed(ledger.count_remaining) * 1e3,
            timed(lambda: sum(1 for _, r in table if r[0] == "pending")) * 1e3,
            "ms",
        ),
        (
            "remaining(limit=20)",
            timed(lambda: ledger.remaining(20)) * 1e3,
            timed(lambda: [k for k, r in table if r[0] == "pending"][:20]) * 1e3,
            "ms",
        ),
        (
            "register() all items, per item",
            register / items * 1e6,
            timed(lambda: dict.fromkeys(keys, ("pending", None, 0, None))) / items * 1e6,
            "us",
        ),
    ]
    store.close()
    return figures


def _disk_mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


def _row(name: str, sqlite: float, json_store: float, unit: str) -> None:
    ratio = sqlite / json_store if json_store else float("nan")
    print(
        f"  {name:<40} sqlite {sqlite:>10.2f} {unit:<4} json {json_store:>10.2f} {unit:<4}"
        f"  {ratio:8.3g}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench sqlite", description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=50_000)
    parser.add_argument("--more", type=int, default=10_000)
    parser.add_argument(
        "--ledger-items", type=int, default=1_000_000, help="ledger size for the query figures"
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, directory = args.child
        figures = measure(kind, Path(directory), args.keys, args.lookups, args.more)
        print(json.dumps(figures))
        return 0

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        for kind in ("json", "sqlite"):
            directory = Path(tmp) / kind
            print(f"building {args.keys:,} done keys in the {kind} store ...", flush=True)
            build_per_key = build(kind, directory, args.keys)
            disk = _disk_mib(directory)
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tools.bench.sqlite",
                    "--keys",
                    str(args.keys),
                    "--lookups",
                    str(args.lookups),
                    "--more",
                    str(args.more),
                    "--child",
                    kind,
                    str(directory),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[kind] = {
                **json.loads(child.stdout.strip().splitlines()[-1]),
                "build_us": build_per_key * 1e6,
                "disk_mib": disk,
            }
        directory = Path(tmp) / "sqlite-ledger"
        print(f"building {args.keys:,} done keys in the sqlite store, with ledger rows ...")
        ledger_build = build("sqlite", directory, args.keys, ledger=True) * 1e6
        ledger_disk = _disk_mib(directory)
        print(f"ledger queries over {args.ledger_items:,} items ...", flush=True)
        queries = ledger_queries(Path(tmp) / "ledger", args.ledger_items)
    s, j = results["sqlite"], results["json"]
    print(f"\n{args.keys:,} URLs done; ratio = sqlite / json (baseline: the JSON store)")
    _row("reopen (load, lock, ready for lookups)", s["reopen_s"] * 1e3, j["reopen_s"] * 1e3, "ms")
    _row("heap held after the reopen (RssAnon)", s["rss_added_mib"], j["rss_added_mib"], "MiB")
    _row("is_key_done, key done", s["hit_us"], j["hit_us"], "us")
    _row("is_key_done, key not done", s["miss_us"], j["miss_us"], "us")
    _row(
        f"update(key=) + saves, {args.more:,} more keys",
        s["update_save_us"],
        j["update_save_us"],
        "us",
    )
    _row("save of 100 new keys", s["save_100_ms"], j["save_100_ms"], "ms")
    _row(f"build: {args.keys:,} keys, per key", s["build_us"], j["build_us"], "us")
    _row("on disk", s["disk_mib"], j["disk_mib"], "MiB")
    _row("build, per key, with a ledger row each", ledger_build, j["build_us"], "us")
    _row("on disk, with the ledger", ledger_disk, j["disk_mib"], "MiB")
    print(
        f"\nledger of {args.ledger_items:,} items, half finished; ratio = SQL / the same figures "
        "computed in Python over the rows in a list"
    )
    for name, sql, python, unit in queries:
        ratio = sql / python if python else float("nan")
        print(
            f"  {name:<40} sqlite {sql:>10.2f} {unit:<4} list {python:>10.2f} {unit:<4}"
            f"  {ratio:8.3g}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
