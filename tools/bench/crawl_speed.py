"""Crawl speed and memory against stock Scrapy and Crawlee, and the start of a resume.

Part of ``python -m tools.bench crawl`` (see :mod:`tools.bench.crawl`). Every crawler runs as
its own process against the same demo-site process, runs alternating (the order rotates each
round); the figures are medians, each a ratio against stock Scrapy measured in the same run.

* ``ours``: the ``discovery`` spider with the project settings (checkpoint middleware,
  crash-safe frontier, exactly-once pipeline).
* ``no checkpoint``: the same spider and tuning with checkpointing off (optional).
* ``stock Scrapy``: a minimal link-following spider run by ``scrapy runspider`` outside the
  project, Scrapy's defaults except robots.txt obeyed, concurrency 32 (also per domain) and
  ``DEPTH_LIMIT`` 10, as ours.
* ``Crawlee file`` / ``Crawlee memory``: Crawlee for Python's ``ParselCrawler`` with
  ``enqueue_links`` (:mod:`tools.bench.crawlee_peer`), concurrency 32, robots.txt, depth 10;
  file storage is its crash-safe mode. Skipped, with a line saying so, when ``crawlee`` is not
  installed (``pip install -e '.[bench]'``).

Pages per second are the requests the site served divided by the crawl's own time (Scrapy's
``elapsed_time_seconds``, the time around Crawlee's ``crawler.run``); peak RSS is the process's
``ru_maxrss`` (``os.wait4``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.demo_site import client
from tools.testing.crawl import (
    DISCOVERY_OUTPUT,
    REPO_ROOT,
    crawl_command,
    crawl_seconds,
    no_checkpoint_settings,
    run_crawl,
)
from tools.testing.jsonl_audit import audit_jsonl

__all__ = [
    "CRAWLERS",
    "PLAIN_SPIDER",
    "Figures",
    "bench_peers",
    "bench_resume_start",
    "crawlee_available",
    "print_peers",
    "print_resume_start",
]

CONCURRENCY = 32
DEPTH_LIMIT = 10
CRAWLERS = ("ours", "no checkpoint", "stock Scrapy", "Crawlee file", "Crawlee memory")
STOCK = "stock Scrapy"

PLAIN_SPIDER = '''\
"""Stock Scrapy: follow every same-host link, one item per page (the benchmark's peer)."""
from urllib.parse import urlsplit

import scrapy
from scrapy.http import TextResponse
from scrapy.linkextractors import LinkExtractor


class PlainSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, start_url, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start_url]
        self.host = urlsplit(start_url).hostname
        self.links = LinkExtractor(unique=True)

    def parse(self, response):
        yield {"url": response.url, "status": response.status,
               "depth": response.meta.get("depth", 0)}
        if not isinstance(response, TextResponse):
            return
        for link in self.links.extract_links(response):
            if urlsplit(link.url).hostname == self.host:
                yield scrapy.Request(link.url, callback=self.parse)
'''


def crawlee_available() -> bool:
    """True when Crawlee for Python (the ``bench`` extra) is installed."""
    return importlib.util.find_spec("crawlee") is not None


@dataclass
class Figures:
    """One crawler's runs on one site."""

    name: str
    rates: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    records: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def rss(self) -> float:
        return statistics.median(self.rss_mib)


@dataclass
class _Run:
    code: int
    seconds: float | None
    rss_mib: float
    output: Path


def _run_measured(command: Sequence[str], cwd: Path, log: Path) -> tuple[int, float]:
    """Run ``command``; its exit code and peak RSS (MiB), from the kernel's account of it."""
    env = {k: v for k, v in os.environ.items() if k != "SCRAPY_SETTINGS_MODULE"}
    with log.open("ab") as handle:
        process = subprocess.Popen(
            list(command), cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024


def _stock_command(plain: Path, start: str, output: Path) -> list[str]:
    settings = {
        "ROBOTSTXT_OBEY": "True",
        "LOG_LEVEL": "INFO",
        "CONCURRENT_REQUESTS": str(CONCURRENCY),
        "CONCURRENT_REQUESTS_PER_DOMAIN": str(CONCURRENCY),
        "DEPTH_LIMIT": str(DEPTH_LIMIT),
    }
    command = [sys.executable, "-m", "scrapy", "runspider", str(plain), "-a", f"start_url={start}"]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    return [*command, "-O", str(output)]


def _run_one(name: str, start: str, run_dir: Path, work: Path) -> _Run:
    log = run_dir / "crawl.log"
    cwd = REPO_ROOT
    if name == "ours":
        command = crawl_command("discovery", run_dir, start_url=start)
        output = run_dir / DISCOVERY_OUTPUT
    elif name == "no checkpoint":
        output = run_dir / "out.jsonl"
        command = crawl_command(
            "discovery",
            run_dir,
            start_url=start,
            settings=no_checkpoint_settings(),
            feed=output,
            overwrite_feed=True,
        )
    elif name == STOCK:
        output = run_dir / "out.jsonl"
        command = _stock_command(work / "plain_spider.py", start, output)
        cwd = work / "outside-project"  # no scrapy.cfg: runspider gets Scrapy's defaults
    else:
        output = run_dir / "out.jsonl"
        storage = "file" if name.endswith("file") else "memory"
        command = [
            sys.executable,
            "-m",
            "tools.bench.crawlee_peer",
            start,
            str(run_dir / "storage"),
            str(output),
            storage,
            str(DEPTH_LIMIT),
        ]
    code, rss = _run_measured(command, cwd, log)
    if name.startswith("Crawlee"):
        lines = [line for line in log.read_text(errors="replace").splitlines() if '"pages"' in line]
        seconds = json.loads(lines[-1])["seconds"] if lines else None
    else:
        seconds = crawl_seconds(log)
    return _Run(code, seconds, rss, output)


def bench_peers(
    base_url: str, work: Path, crawlers: Sequence[str], repeats: int, label: str
) -> dict[str, Figures]:
    """Run each crawler ``repeats`` times from ``/`` of ``base_url``, alternating."""
    plain = work / "plain_spider.py"
    if not plain.exists():
        plain.write_text(PLAIN_SPIDER)
        (work / "outside-project").mkdir()
    results = {name: Figures(name) for name in crawlers}
    start = base_url + "/"
    for round_ in range(repeats):
        order = list(crawlers[round_ % len(crawlers) :]) + list(crawlers[: round_ % len(crawlers)])
        for name in order:
            run_dir = work / f"{label}-{round_}-{name.replace(' ', '-')}"
            run_dir.mkdir(parents=True)
            client.reset(base_url)
            run = _run_one(name, start, run_dir, work)
            served = client.stats(base_url)["requests"]
            if run.code != 0 or not run.seconds:
                raise RuntimeError(f"{name}: crawl failed (exit {run.code}); see {run_dir}")
            figures = results[name]
            figures.rates.append(served / run.seconds)
            figures.rss_mib.append(run.rss_mib)
            figures.requests.append(served)
            figures.records.append(audit_jsonl(run.output).lines)
    return results


def print_peers(results: dict[str, Figures], title: str) -> None:
    """One table: pages/s and peak RSS, each also as a ratio against stock Scrapy."""
    stock = results.get(STOCK)
    runs = len(next(iter(results.values())).rates)
    print(f"\n{title} (median of {runs} runs each, alternating)")
    header = (
        f"  {'crawler':<16} {'requests':>8} {'records':>7} {'pages/s':>8} {'vs stock':>8} "
        f"{'peak RSS':>9} {'vs stock':>8}   runs (pages/s)"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for figures in results.values():
        rate_ratio = f"{figures.rate / stock.rate:.2f}x" if stock else ""
        rss_ratio = f"{figures.rss / stock.rss:.2f}x" if stock else ""
        print(
            f"  {figures.name:<16} {statistics.median(figures.requests):>8.0f} "
            f"{statistics.median(figures.records):>7.0f} {figures.rate:>8.1f} {rate_ratio:>8} "
            f"{figures.rss:>6.0f} MiB {rss_ratio:>8}   "
            + ", ".join(f"{r:.0f}" for r in figures.rates)
        )
    ours = results.get("ours")
    if ours and stock:
        print(f"  ours / stock Scrapy pages/s   = {ours.rate / stock.rate:.2f}x  (target >= 1.20x)")
        print(f"  ours / stock Scrapy peak RSS  = {ours.rss / stock.rss:.2f}x  (target <= 1.20x)")
    crawlee = results.get("Crawlee file")
    if ours and crawlee:
        print(
            f"  ours / Crawlee file pages/s   = {ours.rate / crawlee.rate:.2f}x  "
            "(target >= 1.00x, goal 1.50x)"
        )


def _first_request_after(base_url: str, started: float, done: threading.Event) -> float | None:
    """Seconds from ``started`` until the site has served a request (polled every 10 ms)."""
    while not done.is_set():
        if client.stats(base_url)["requests"] > 0:
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def _time_to_first_fetch(
    command: Sequence[str], cwd: Path, log: Path, base_url: str, *, finish: bool
) -> tuple[float | None, int]:
    client.reset(base_url)
    env = {k: v for k, v in os.environ.items() if k != "SCRAPY_SETTINGS_MODULE"}
    done = threading.Event()
    with log.open("ab") as handle:
        started = time.monotonic()
        process = subprocess.Popen(
            list(command), cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env
        )
        try:
            first = _first_request_after(base_url, started, done)
            if not finish:
                process.send_signal(signal.SIGKILL)
            code = process.wait(timeout=300)
        finally:
            done.set()
            if process.poll() is None:
                process.kill()
                process.wait()
    return first, code


def bench_resume_start(
    base_url: str, work: Path, repeats: int, records: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds to the first request: stock Scrapy starting, and ours resuming after SIGKILL.

    Ours is killed once half its ``records`` (an uninterrupted run's) are written, then started
    again (and finishes).
    """
    plain = work / "plain_spider.py"
    start = base_url + "/"
    stock_starts: list[float] = []
    fresh_starts: list[float] = []
    resumes: list[float] = []
    half = max(1, records // 2)
    for k in range(repeats):
        run_dir = work / f"resume-{k}"
        run_dir.mkdir()
        stock = _stock_command(plain, start, run_dir / "stock.jsonl")
        first, _ = _time_to_first_fetch(
            stock, work / "outside-project", run_dir / "stock.log", base_url, finish=False
        )
        if first is not None:
            stock_starts.append(first)
        fresh = crawl_command("discovery", run_dir / "fresh", start_url=start)
        first, _ = _time_to_first_fetch(
            fresh, REPO_ROOT, run_dir / "fresh.log", base_url, finish=False
        )
        if first is not None:
            fresh_starts.append(first)
        ours = crawl_command("discovery", run_dir, start_url=start)
        killed = run_crawl(
            ours,
            log_path=run_dir / "ours.log",
            watch=run_dir / DISCOVERY_OUTPUT,
            kill_at_lines=half,
        )
        if not killed.killed:
            raise RuntimeError(f"ours finished before the kill: {killed.outcome}")
        first, code = _time_to_first_fetch(
            ours, REPO_ROOT, run_dir / "ours.log", base_url, finish=True
        )
        if code != 0:
            raise RuntimeError(f"the resumed crawl failed (exit {code}); see {run_dir}")
        if first is not None:
            resumes.append(first)
    return stock_starts, fresh_starts, resumes


def print_resume_start(
    stock_starts: list[float], fresh_starts: list[float], resumes: list[float]
) -> None:
    """Start-to-first-fetch: stock Scrapy's fresh start against our resume after SIGKILL."""
    if not stock_starts or not resumes:
        print("\n(c) resume start: no figures (a run fetched nothing)")
        return
    stock, ours = statistics.median(stock_starts), statistics.median(resumes)
    print("\n(c) Start to first fetch, link-dense site (median)")
    for name, median, runs in (
        ("stock Scrapy, fresh start", stock, stock_starts),
        ("ours, fresh start", statistics.median(fresh_starts or [0.0]), fresh_starts),
        ("ours, resuming after SIGKILL@50%", ours, resumes),
    ):
        print(f"  {name:<33} {median:6.2f} s   ({', '.join(f'{r:.2f}' for r in runs)})")
    print(f"  ours - stock = {ours - stock:+.2f} s  (target <= +1.00 s)")
