"""Benchmark: a crawl on the Redis frontier with 1 and 2 workers against the local frontier.

    python -m tools.bench redis [--pages 1000] [--seed 11] [--latency-ms 20,200] [--repeats 1]
                                [--redis-url URL]

For each page latency of the demo site (``--latency-ms``: every response is delayed that long),
the ``discovery`` spider crawls the whole site three ways: the project's local crash-safe
frontier (the baseline), one worker on the Redis frontier, and two workers on one Redis frontier
started together. Pages per second are the demo site's served requests divided by the crawl
window (first spider start to last spider finish, from Scrapy's stats). Every figure is printed
as a ratio against the local crawl measured in the same run, and every output is checked to hold
the local crawl's URLs, each once. Nothing here asserts speed.

The Redis URL defaults to ``$PIPELINE_TEST_REDIS_URL`` (``eval "$(.ci/services)"``); each run
uses its own key prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from common.redis.frontier import RedisFrontier, default_output
from tools.demo_site import client, start_demo_site_process, stop_demo_site_process
from tools.testing.crawl import (
    DISCOVERY_OUTPUT,
    REPO_ROOT,
    crawl_command,
)
from tools.testing.jsonl_audit import audit_jsonl

_STAT = re.compile(r"'(finish_time|elapsed_time_seconds)': (datetime\.datetime\([^)]*\)|[0-9.]+)")


@dataclass
class Figure:
    label: str
    rates: list[float] = field(default_factory=list)
    same_urls: list[bool] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def crawl_window(logs: Sequence[Path]) -> float:
    """Seconds from the first spider's start to the last one's finish (Scrapy's stats)."""
    starts, finishes = [], []
    for log in logs:
        found = dict(_STAT.findall(log.read_text(errors="replace")))
        finish = _parse_datetime(found["finish_time"])
        elapsed = float(found["elapsed_time_seconds"])
        finishes.append(finish)
        starts.append(finish - elapsed)
    return max(finishes) - min(starts)


def _parse_datetime(text: str) -> float:
    numbers = [int(n) for n in re.findall(r"\d+", text.split("tzinfo")[0])]
    numbers += [0] * (7 - len(numbers))
    year, month, day, hour, minute, second, micro = numbers[:7]
    return datetime(year, month, day, hour, minute, second, micro).timestamp()


def run_workers(commands: Sequence[list[str]], logs: Sequence[Path], timeout: float) -> None:
    processes = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("wb") as handle:
            processes.append(
                subprocess.Popen(command, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT)
            )
    deadline = time.monotonic() + timeout
    try:
        for process, log in zip(processes, logs, strict=True):
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            if code != 0:
                raise RuntimeError(f"crawl exited with {code}; see {log}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def measure(
    base_url: str,
    work: Path,
    redis_url: str,
    workers: int,
    timeout: float,
) -> tuple[float, set[str], bool]:
    """One crawl of the whole site: (pages/s, URLs recorded, no duplicate or torn line)."""
    run = work / f"run-{uuid.uuid4().hex[:8]}"
    prefix = f"bench-redis-{uuid.uuid4().hex[:12]}"
    settings: dict[str, str] = {"LOGSTATS_INTERVAL": "60"}
    if workers:
        settings |= {"CHECKPOINT_REDIS_URL": redis_url, "CHECKPOINT_REDIS_PREFIX": prefix}
    count = max(1, workers)
    datas = [run / f"worker{i}" for i in range(count)]
    logs = [run / f"worker{i}.log" for i in range(count)]
    run.mkdir(parents=True)
    commands = [
        crawl_command("discovery", d, start_url=base_url + "/", settings=settings) for d in datas
    ]
    client.reset(base_url, transient=True)
    try:
        run_workers(commands, logs, timeout)
    finally:
        if workers:
            frontier = RedisFrontier(redis_url, prefix)
            frontier.delete()
            frontier.close()
    requests = int(client.stats(base_url)["requests"])
    paths = [
        default_output(d / DISCOVERY_OUTPUT, prefix) if workers else d / DISCOVERY_OUTPUT
        for d in datas
    ]
    outputs = [audit_jsonl(path) for path in paths if path.exists()]
    if len(outputs) != 1:
        raise RuntimeError(f"expected one exported output, found {len(outputs)} in {run}")
    out = outputs[0]
    clean = out.doubled == 0 and not out.torn and out.bad_lines == 0
    return requests / crawl_window(logs), out.url_set, clean


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench redis", description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--latency-ms", default="20,200", help="comma-separated page latencies")
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (median)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per crawl")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("PIPELINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    args = parser.parse_args(argv)
    latencies = [float(v) for v in args.latency_ms.split(",") if v.strip()]
    print(
        f"discovery over a {args.pages}-page demo site (seed {args.seed}), Redis at "
        f"{args.redis_url}, median of {args.repeats}; pages/s = site requests / crawl window",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        work = Path(tmp)
        for latency in latencies:
            process, base_url = start_demo_site_process(
                args.pages, args.seed, latency_ms=latency, stderr=subprocess.DEVNULL
            )
            try:
                figures = [
                    Figure("local frontier"),
                    Figure("Redis, 1 worker"),
                    Figure("Redis, 2 workers"),
                ]
                expected: set[str] | None = None
                for _ in range(args.repeats):
                    for workers, figure in enumerate(figures):
                        rate, urls, clean = measure(
                            base_url, work, args.redis_url, workers, args.timeout
                        )
                        if expected is None:
                            expected = urls
                        figure.rates.append(rate)
                        figure.same_urls.append(clean and urls == expected)
            finally:
                stop_demo_site_process(process)
            baseline = figures[0].rate
            print(f"\npage latency {latency:g} ms")
            print(f"  {'crawl':<18} {'pages/s':>9} {'vs local':>9}  same URLs, once each")
            for figure in figures:
                same = "yes" if all(figure.same_urls) else "NO"
                print(
                    f"  {figure.label:<18} {figure.rate:>9.1f} {figure.rate / baseline:>8.2f}x  {same}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
