"""Crawl benchmarks: throughput against stock Scrapy, and what a SIGKILL costs against JOBDIR.

    python -m tools.bench crawl [--pages 2000] [--seed 11] [--repeats 3] [--latency-ms 0]
                                [--fractions 0.2,0.4,0.6,0.8] [--skip-throughput] [--skip-kill]

(a) Throughput on a local demo site: the ``discovery`` spider with the project settings (the
    checkpoint middleware, the crash-safe frontier and the exactly-once pipeline), the same spider
    and tuning with checkpointing switched off, and stock Scrapy (a minimal link-following spider
    run by ``scrapy runspider`` outside the project, default settings except ``ROBOTSTXT_OBEY`` and
    ``LOG_LEVEL=INFO`` so all three do the same work and log alike). Pages per second are the
    demo site's served requests divided by the crawl's ``elapsed_time_seconds``; runs are
    interleaved and the median is reported.

(b) SIGKILL at 20/40/60/80% of the crawl (by output lines against an uninterrupted run), then the
    same command again until it finishes: pages lost (reference URLs missing from the output),
    duplicate and unparseable lines, and pages re-fetched (requests served beyond the
    uninterrupted run's), for our checkpoint and for plain Scrapy ``JOBDIR``.

The process helpers (``run_crawl``, ``read_output``, ``site_stats`` ...) are shared with
``tests/test_crawl_kill.py``. Nothing here asserts speed: figures are measured and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.demo_site import start_demo_site_process, stop_demo_site_process

REPO_ROOT = Path(__file__).resolve().parents[2]
DISCOVERY_OUTPUT = Path("processed") / "stage01" / "discovery_output.jsonl"
VALIDATION_OUTPUT = Path("processed") / "stage02" / "validation_output.jsonl"

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


# Commands ---------------------------------------------------------------------------------------


def crawl_command(
    spider: str,
    data_dir: Path,
    *,
    start_url: str | None = None,
    input_file: Path | None = None,
    settings: Mapping[str, str] | None = None,
    feed: Path | None = None,
    overwrite_feed: bool = False,
) -> list[str]:
    """``python -m scrapy crawl SPIDER`` of this project, writing under ``data_dir``."""
    command = [sys.executable, "-m", "scrapy", "crawl", spider]
    if start_url is not None:
        command += ["-a", f"start_url={start_url}"]
    if input_file is not None:
        command += ["-a", f"input_file={input_file}"]
    merged = {
        "DATA_DIR": str(data_dir),
        "CHECKPOINT_DIR": str(data_dir / "checkpoints"),
        "LOG_LEVEL": "INFO",
        **(settings or {}),
    }
    for name, value in merged.items():
        command += ["-s", f"{name}={value}"]
    if feed is not None:
        command += ["-O" if overwrite_feed else "-o", str(feed)]
    return command


def jobdir_settings(jobdir: Path) -> dict[str, str]:
    """Plain Scrapy persistence: no checkpoint, Scrapy's scheduler with ``JOBDIR``."""
    return {
        "CHECKPOINT_ENABLED": "False",
        "SCHEDULER": "scrapy.core.scheduler.Scheduler",
        "ITEM_PIPELINES": "{}",
        "JOBDIR": str(jobdir),
    }


def no_checkpoint_settings() -> dict[str, str]:
    """The project's tuning with checkpointing off (and no JOBDIR)."""
    return {
        "CHECKPOINT_ENABLED": "False",
        "SCHEDULER": "scrapy.core.scheduler.Scheduler",
        "ITEM_PIPELINES": "{}",
    }


# Running and killing --------------------------------------------------------------------------


@dataclass
class RunResult:
    """One crawl process: how it ended."""

    returncode: int | None
    seconds: float
    killed: bool = False
    hung: bool = False
    lines_at_kill: int | None = None

    @property
    def outcome(self) -> str:
        if self.hung:
            return "hang"
        if self.killed:
            return f"killed@{self.lines_at_kill}"
        return f"exit {self.returncode}"


class LineCounter:
    """Counts complete lines of a file that grows (and may be cut back), reading only new bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self.offset = self.lines = 0
            return 0
        if size < self.offset:  # truncated (a resume cutting uncommitted records): recount
            self.offset = self.lines = 0
        if size > self.offset:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read(size - self.offset)
            self.offset += len(data)
            self.lines += data.count(b"\n")
        return self.lines


def run_crawl(
    command: Sequence[str],
    *,
    log_path: Path,
    cwd: Path = REPO_ROOT,
    watch: Path | None = None,
    kill_at_lines: int | None = None,
    kill_delay: float = 0.0,
    timeout: float = 300.0,
    poll_interval: float = 0.01,
) -> RunResult:
    """Run a crawl; SIGKILL it once ``watch`` holds ``kill_at_lines`` lines (plus ``kill_delay``).

    The output file is polled, so the kill lands at a point defined by the crawl's progress, not
    by a guessed sleep. A run still going after ``timeout`` seconds is killed and marked hung.
    """
    counter = LineCounter(watch) if watch is not None else None
    started = time.monotonic()
    with log_path.open("ab") as log:
        process = subprocess.Popen(list(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                code = process.poll()
                if code is not None:
                    return RunResult(code, time.monotonic() - started)
                elapsed = time.monotonic() - started
                if elapsed > timeout:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    return RunResult(None, elapsed, killed=True, hung=True)
                if counter is not None and kill_at_lines is not None:
                    lines = counter.count()
                    if lines >= kill_at_lines:
                        if kill_delay > 0:
                            time.sleep(kill_delay)
                        if process.poll() is not None:
                            assert process.returncode is not None
                            return RunResult(process.returncode, time.monotonic() - started)
                        process.send_signal(signal.SIGKILL)
                        process.wait()
                        return RunResult(
                            None,
                            time.monotonic() - started,
                            killed=True,
                            lines_at_kill=counter.count(),
                        )
                time.sleep(poll_interval)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@dataclass
class OutputCheck:
    """What a JSON Lines output file holds."""

    lines: int = 0
    urls: list[str] = field(default_factory=list)
    unparseable: int = 0
    torn_last_line: bool = False

    @property
    def url_set(self) -> set[str]:
        return set(self.urls)

    @property
    def duplicates(self) -> int:
        return len(self.urls) - len(self.url_set)

    @property
    def duplicate_urls(self) -> list[str]:
        return sorted(url for url, n in Counter(self.urls).items() if n > 1)


def read_output(path: Path) -> OutputCheck:
    """Parse ``path`` line by line; a missing file is an empty output."""
    check = OutputCheck()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return check
    check.torn_last_line = bool(data) and not data.endswith(b"\n")
    for line in data.splitlines():
        check.lines += 1
        try:
            record = json.loads(line)
            url = record["url"]
        except (ValueError, KeyError, TypeError):
            check.unparseable += 1
            continue
        check.urls.append(str(url))
    return check


# The demo site's counters -----------------------------------------------------------------------


def site_stats(base_url: str) -> dict[str, Any]:
    """``GET /__stats``: ``{"requests": N, "paths": {path: count}}``."""
    with urllib.request.urlopen(base_url + "/__stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def reset_site_stats(base_url: str, *, transient: bool = True) -> None:
    """Zero the counters; ``transient`` also re-arms the pages whose first request fails."""
    url = base_url + "/__stats/reset" + ("?transient=1" if transient else "")
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def refetched(
    after: Mapping[str, Any],
    reference: Mapping[str, Any],
    exclude: Sequence[str] = ("/robots.txt",),
) -> tuple[int, int]:
    """``(requests beyond the reference's, distinct paths fetched more often than in it)``.

    Per path, so a crawl that fetched some pages twice and others never is not netted out.
    ``/robots.txt`` (fetched once per run) is left out by default.
    """
    paths = {p: n for p, n in after["paths"].items() if p not in exclude}
    ref_paths: Mapping[str, int] = reference["paths"]
    extra = sum(max(0, n - ref_paths.get(p, 0)) for p, n in paths.items())
    more = sum(1 for p, n in paths.items() if n > ref_paths.get(p, 0))
    return extra, more


def crawl_seconds(log_path: Path) -> float | None:
    """The last ``elapsed_time_seconds`` in a Scrapy log's stats dump."""
    found = re.findall(r"'elapsed_time_seconds': ([0-9.]+)", log_path.read_text(errors="replace"))
    return float(found[-1]) if found else None


# (a) Throughput ---------------------------------------------------------------------------------


@dataclass
class Throughput:
    name: str
    rates: list[float] = field(default_factory=list)
    wall_rates: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def bench_throughput(base_url: str, work: Path, repeats: int) -> dict[str, Throughput]:
    plain = work / "plain_spider.py"
    plain.write_text(PLAIN_SPIDER)
    outside = work / "outside-project"  # no scrapy.cfg: runspider gets Scrapy's defaults
    outside.mkdir()
    env_free = {k: v for k, v in os.environ.items() if k != "SCRAPY_SETTINGS_MODULE"}
    start = base_url + "/"
    results = {
        name: Throughput(name)
        for name in ("ours (checkpoint + frontier)", "same tuning, no checkpoint", "stock Scrapy")
    }
    for round_ in range(repeats):
        for name, result in results.items():
            run_dir = work / f"tp-{round_}-{len(result.rates)}-{name.split()[0]}"
            run_dir.mkdir()
            log = run_dir / "crawl.log"
            if name.startswith("ours"):
                command = crawl_command("discovery", run_dir, start_url=start)
                cwd = REPO_ROOT
            elif name.startswith("same"):
                command = crawl_command(
                    "discovery",
                    run_dir,
                    start_url=start,
                    settings=no_checkpoint_settings(),
                    feed=run_dir / "out.jsonl",
                    overwrite_feed=True,
                )
                cwd = REPO_ROOT
            else:
                command = [
                    sys.executable,
                    "-m",
                    "scrapy",
                    "runspider",
                    str(plain),
                    "-a",
                    f"start_url={start}",
                    "-s",
                    "ROBOTSTXT_OBEY=True",
                    "-s",
                    "LOG_LEVEL=INFO",
                    "-O",
                    str(run_dir / "out.jsonl"),
                ]
                cwd = outside
            reset_site_stats(base_url)
            started = time.monotonic()
            with log.open("ab") as handle:
                code = subprocess.run(
                    command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env_free
                ).returncode
            wall = time.monotonic() - started
            served = int(site_stats(base_url)["requests"])
            seconds = crawl_seconds(log)
            if code != 0 or seconds is None:
                raise RuntimeError(f"{name}: crawl failed (exit {code}); see {log}")
            result.rates.append(served / seconds)
            result.wall_rates.append(served / wall)
            result.requests.append(served)
    return results


def print_throughput(results: Mapping[str, Throughput], pages: int) -> None:
    ours = results["ours (checkpoint + frontier)"]
    print(f"\n(a) Crawl throughput, demo site of {pages} pages (median of {len(ours.rates)} runs)")
    header = f"  {'crawler':<30} {'requests':>9} {'pages/s':>9} {'(runs)':<26} {'wall p/s':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for result in results.values():
        runs = ", ".join(f"{r:.0f}" for r in result.rates)
        print(
            f"  {result.name:<30} {statistics.median(result.requests):>9.0f} "
            f"{result.median:>9.1f} {'(' + runs + ')':<26} "
            f"{statistics.median(result.wall_rates):>9.1f}"
        )
    stock = results["stock Scrapy"].median
    same = results["same tuning, no checkpoint"].median
    print(f"  ours / stock Scrapy         = {ours.median / stock:.2f}x   (target >= 1.20x)")
    print(f"  ours / same tuning, no ckpt = {ours.median / same:.2f}x   (target >= 0.95x)")


# (b) Kill at a fraction -------------------------------------------------------------------------


@dataclass
class KillFigures:
    who: str
    fraction: float
    killed: RunResult
    resumes: list[RunResult]
    output: OutputCheck
    lost: int
    extra: int
    refetched_requests: int
    never_fetched: int


def _resume_until_done(
    command: Sequence[str], log: Path, timeout: float, max_runs: int = 3
) -> list[RunResult]:
    runs: list[RunResult] = []
    for _ in range(max_runs):
        result = run_crawl(command, log_path=log, timeout=timeout)
        runs.append(result)
        if result.hung or result.returncode == 0:
            break
    return runs


def bench_kills(
    base_url: str, work: Path, fractions: Sequence[float], timeout: float
) -> tuple[int, list[KillFigures]]:
    start = base_url + "/"
    ref_dir = work / "kill-reference"
    reset_site_stats(base_url)
    reference_run = run_crawl(
        crawl_command("discovery", ref_dir, start_url=start), log_path=work / "kill-reference.log"
    )
    if reference_run.returncode != 0:
        raise RuntimeError(f"reference crawl failed: {reference_run.outcome}")
    reference_stats = site_stats(base_url)
    reference = read_output(ref_dir / DISCOVERY_OUTPUT)
    ref_urls = reference.url_set
    figures: list[KillFigures] = []
    for fraction in fractions:
        for who in ("ours", "JOBDIR"):
            run_dir = work / f"kill-{who}-{int(fraction * 100)}"
            log = run_dir.with_suffix(".log")
            if who == "ours":
                command = crawl_command("discovery", run_dir, start_url=start)
                output = run_dir / DISCOVERY_OUTPUT
            else:
                output = run_dir / "out.jsonl"
                command = crawl_command(
                    "discovery",
                    run_dir,
                    start_url=start,
                    settings=jobdir_settings(run_dir / "jobdir"),
                    feed=output,
                )
            run_dir.mkdir(parents=True)
            reset_site_stats(base_url)
            killed = run_crawl(
                command,
                log_path=log,
                watch=output,
                kill_at_lines=max(1, round(fraction * reference.lines)),
                timeout=timeout,
            )
            resumes = _resume_until_done(command, log, timeout)
            after = site_stats(base_url)
            extra, _ = refetched(after, reference_stats)
            never = sum(
                1 for p, n in reference_stats["paths"].items() if after["paths"].get(p, 0) < 1 <= n
            )
            out = read_output(output)
            figures.append(
                KillFigures(
                    who=who,
                    fraction=fraction,
                    killed=killed,
                    resumes=resumes,
                    output=out,
                    lost=len(ref_urls - out.url_set),
                    extra=len(out.url_set - ref_urls),
                    refetched_requests=extra,
                    never_fetched=never,
                )
            )
    return reference.lines, figures


def print_kills(reference_lines: int, figures: Sequence[KillFigures]) -> None:
    print(
        f"\n(b) One SIGKILL at a share of the crawl, then the same command until it exits "
        f"(reference: {reference_lines} records)"
    )
    header = (
        f"  {'kill at':>7}  {'crawler':<7} {'killed run':<14} {'resume':<18} {'lost':>5} "
        f"{'dup':>4} {'bad':>4} {'torn':>5} {'re-fetched':>10} {'never fetched':>13}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for f in figures:
        resume = ", ".join(r.outcome for r in f.resumes)
        print(
            f"  {f.fraction:>6.0%}  {f.who:<7} {f.killed.outcome:<14} {resume:<18} {f.lost:>5} "
            f"{f.output.duplicates:>4} {f.output.unparseable:>4} "
            f"{'yes' if f.output.torn_last_line else 'no':>5} {f.refetched_requests:>10} "
            f"{f.never_fetched:>13}"
        )
    print(
        "  lost: reference URLs missing from the final output; dup: duplicate lines; bad: lines "
        "that do not parse;\n  re-fetched: requests served beyond the uninterrupted run's "
        "(robots.txt left out);\n  never fetched: paths the reference fetched that "
        "the killed + resumed crawl never requested."
    )


# Entry point ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench crawl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per crawler")
    parser.add_argument(
        "--fractions", default="0.2,0.4,0.6,0.8", help="kill points, shares of the crawl"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="a run longer than this hangs")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="demo site delay per response (0: a local, CPU-bound crawl; 20-100: network-like)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; demo site: "
        f"{args.pages} pages, seed {args.seed}, latency {args.latency_ms:g} ms"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    site, base_url = start_demo_site_process(
        args.pages, args.seed, latency_ms=args.latency_ms, stderr=subprocess.DEVNULL
    )
    try:
        if not args.skip_throughput:
            print_throughput(bench_throughput(base_url, work, args.repeats), args.pages)
        if not args.skip_kill:
            print_kills(*bench_kills(base_url, work, fractions, args.timeout))
    finally:
        stop_demo_site_process(site)
        if args.keep:
            print(f"\nwork directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
