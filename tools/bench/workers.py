"""Benchmark: enrichment workers sharing one PostgreSQL stage. Run on demand, never asserted.

    python -m tools.bench workers [--dsn DSN] [--pages 1200] [--latency-ms 50] [--workers 1,2,4]

Against a local demo site whose every page takes ``--latency-ms`` (I/O-bound, so scaling shows
on two cores), each worker fetching ``--concurrency`` pages at a time:

* throughput with 1, 2 and 4 worker processes on one stage, as a ratio to 1 worker (the rate
  is measured from the first claim to the last commit, in the database's clock, so process
  start-up is left out; wall time including start-up is printed beside it);
* claim and commit latency per batch (median, p95), against a one-row durable ``UPDATE`` (one
  round trip and one WAL flush, the least a durable claim can cost) on the same server in the
  same run; a bare ``SELECT 1`` round trip is printed too;
* how long a SIGKILLed worker's batch waits before another worker takes it over, against the
  lease length.

The DSN comes from ``--dsn``, ``$RESUMABLE_CRAWL_DSN`` or ``$PIPELINE_TEST_POSTGRES_DSN``; each
run uses its own stage name there and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from common.work_queue import WorkQueue, resolve_dsn
from common.work_queue.dsn import DSN_ENV
from enrich.config import EnrichmentConfig
from tools.demo_site import build_site, start_demo_site_process, stop_demo_site_process

ROOT = Path(__file__).resolve().parents[2]


def _row(name: str, value: str, baseline: str, ratio: float | None) -> None:
    ratio_text = f"{ratio:8.2f}x" if ratio is not None else "        -"
    print(f"  {name:<44} {value:>14}   baseline {baseline:>16}   {ratio_text}")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, base_url: str, urls: list[str]) -> None:
        self.args = args
        self.dsn = dsn
        self.base_url = base_url
        self.urls = urls
        self.config = EnrichmentConfig(
            concurrency=args.concurrency,
            per_host_concurrency=args.concurrency,
            allowed_domains=(urlsplit(base_url).hostname or "127.0.0.1",),
        )

    def load(self, stage: str) -> WorkQueue:
        queue = WorkQueue(self.dsn, stage)
        queue.load(
            ((url, None) for url in self.urls),
            input_hash="bench",
            config={"fetch": self.config.to_dict()},
            lease_seconds=self.args.lease_seconds,
        )
        return queue

    def spawn(self, stage: str, n: int, stats: Path) -> list[subprocess.Popen[bytes]]:
        env = {**os.environ, DSN_ENV: self.dsn}
        return [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "enrich.worker",
                    "--stage",
                    stage,
                    "--worker-id",
                    f"bench-{i}",
                    "--batch-size",
                    str(self.args.batch_size),
                    "--stats-file",
                    str(stats / f"{stage}-{i}.json"),
                ],
                cwd=ROOT,
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for i in range(n)
        ]

    def throughput(self, n: int, stats: Path) -> tuple[float, float, list[dict[str, Any]]]:
        stage = f"bench_w{n}_{uuid.uuid4().hex[:8]}"
        queue = self.load(stage)
        try:
            started = time.perf_counter()
            workers = self.spawn(stage, n, stats)
            for worker in workers:
                worker.wait()
            wall = time.perf_counter() - started
            with psycopg.connect(self.dsn) as conn:
                row = conn.execute(
                    "SELECT count(*), extract(epoch FROM max(finished_at) - min(claimed_at)) "
                    "FROM rcq_items WHERE stage = %s AND state IN ('done', 'failed')",
                    (stage,),
                ).fetchone()
            assert row is not None and row[0] == len(self.urls), f"{row} of {len(self.urls)}"
            rate = row[0] / float(row[1])
            timings = [json.loads(p.read_text()) for p in stats.glob(f"{stage}-*.json")]
            return rate, wall, timings
        finally:
            queue.delete()
            queue.close()

    def takeover(self, stats: Path) -> tuple[float, int]:
        stage = f"bench_kill_{uuid.uuid4().hex[:8]}"
        queue = self.load(stage)
        workers = self.spawn(stage, 4, stats)
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                deadline = time.monotonic() + 120
                victim = None
                while victim is None:
                    assert time.monotonic() < deadline, "no worker ever held a batch"
                    victim = conn.execute(
                        "SELECT worker FROM rcq_items WHERE stage = %s AND state = 'leased' "
                        "AND worker IN (SELECT worker FROM rcq_items WHERE stage = %s "
                        "AND state = 'done') LIMIT 1",
                        (stage, stage),
                    ).fetchone()
                    time.sleep(0.005)
                number = int(victim[0].rsplit("-", 1)[1])
                workers[number].send_signal(signal.SIGKILL)
                killed = time.perf_counter()
                keys = [
                    key
                    for (key,) in conn.execute(
                        "SELECT key FROM rcq_items WHERE stage = %s AND worker = %s "
                        "AND state = 'leased'",
                        (stage, victim[0]),
                    )
                ]
                while True:
                    row = conn.execute(
                        "SELECT count(*) FROM rcq_items WHERE stage = %s AND key = ANY(%s) "
                        "AND worker = %s",
                        (stage, keys, victim[0]),
                    ).fetchone()
                    if row is not None and row[0] == 0:
                        break
                    assert time.perf_counter() - killed < 120, "never taken over"
                    time.sleep(0.005)
                return time.perf_counter() - killed, len(keys)
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
            queue.delete()
            queue.close()

    def baselines(self) -> tuple[float, float]:
        """Median of a bare ``SELECT 1`` and of a one-row durable UPDATE (a WAL flush)."""
        table = f"bench_one_row_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} (n integer)")  # type: ignore[arg-type]
            conn.execute(f"INSERT INTO {table} VALUES (0)")  # type: ignore[arg-type]
            try:
                selects, updates = [], []
                for _ in range(200):
                    started = time.perf_counter()
                    conn.execute("SELECT 1").fetchone()
                    selects.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    conn.execute(f"UPDATE {table} SET n = n + 1")  # type: ignore[arg-type]
                    updates.append(time.perf_counter() - started)
            finally:
                conn.execute(f"DROP TABLE {table}")  # type: ignore[arg-type]
        return statistics.median(selects), statistics.median(updates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dsn", help=f"default ${DSN_ENV} or $PIPELINE_TEST_POSTGRES_DSN")
    parser.add_argument("--pages", type=int, default=1200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=4, help="fetches in flight per worker")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to compare")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    dsn = resolve_dsn(args.dsn) or os.environ.get("PIPELINE_TEST_POSTGRES_DSN")
    if not dsn:
        parser.error(f"no database: give --dsn or set {DSN_ENV}")
    counts = [int(n) for n in args.workers.split(",")]
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores")
    process, base_url = start_demo_site_process(
        args.pages, args.seed, latency_ms=args.latency_ms, stderr=subprocess.DEVNULL
    )
    try:
        urls = build_site(args.pages, args.seed).expected_ok_urls(base_url)
        bench = Bench(args, dsn, base_url, urls)
        with tempfile.TemporaryDirectory() as tmp:
            stats = Path(tmp)
            print(
                f"{len(urls):,} demo-site pages, {args.latency_ms:g} ms each, {args.concurrency} "
                f"fetches in flight per worker, batches of {args.batch_size}"
            )
            rates: dict[int, float] = {}
            timings: list[dict[str, Any]] = []
            for n in counts:
                rate, wall, worker_timings = bench.throughput(n, stats)
                rates[n] = rate
                timings += worker_timings
                base = rates[counts[0]]
                _row(
                    f"{n} worker{'s' if n > 1 else ''} ({wall:.1f} s wall with start-up)",
                    f"{rate:.0f} pages/s",
                    f"{base:.0f} pages/s",
                    rate / base,
                )
            select, update = bench.baselines()
            claims = [s for t in timings for s in t["claim_seconds"]]
            commits = [s for t in timings for s in t["commit_seconds"]]
            print(
                f"per batch, {len(claims):,} claims and {len(commits):,} commits (all runs); "
                f"baselines: SELECT 1 {select * 1000:.2f} ms, one-row UPDATE "
                f"{update * 1000:.2f} ms (its WAL flush)"
            )
            for name, values in (("claim", claims), ("commit", commits)):
                for label, share in (("median", 0.5), ("p95", 0.95)):
                    value = _percentile(values, share)
                    _row(
                        f"{name} latency, {label}",
                        f"{value * 1000:.2f} ms",
                        f"{update * 1000:.2f} ms UPDATE",
                        value / update,
                    )
            took, items = bench.takeover(stats)
            print(f"SIGKILL of one of 4 workers holding {items} leased items")
            _row(
                "until another worker took them all",
                f"{took:.2f} s",
                f"{args.lease_seconds:.2f} s lease",
                took / args.lease_seconds,
            )
    finally:
        stop_demo_site_process(process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
