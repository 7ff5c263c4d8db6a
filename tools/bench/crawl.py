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

The process helpers live in :mod:`tools.testing.crawl` (shared with the tests). Nothing here
asserts speed: figures are measured and printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.demo_site import client, start_demo_site_process, stop_demo_site_process
from tools.testing.crawl import (
    DISCOVERY_OUTPUT,
    REPO_ROOT,
    RunResult,
    crawl_command,
    crawl_seconds,
    jobdir_settings,
    no_checkpoint_settings,
    refetched,
    run_crawl,
)
from tools.testing.jsonl_audit import FileAudit, audit_jsonl

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
            client.reset(base_url)
            started = time.monotonic()
            with log.open("ab") as handle:
                code = subprocess.run(
                    command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env_free
                ).returncode
            wall = time.monotonic() - started
            served = int(client.stats(base_url)["requests"])
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
    output: FileAudit
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
    client.reset(base_url)
    reference_run = run_crawl(
        crawl_command("discovery", ref_dir, start_url=start), log_path=work / "kill-reference.log"
    )
    if reference_run.returncode != 0:
        raise RuntimeError(f"reference crawl failed: {reference_run.outcome}")
    reference_stats = client.stats(base_url)
    reference = audit_jsonl(ref_dir / DISCOVERY_OUTPUT)
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
            client.reset(base_url)
            killed = run_crawl(
                command,
                log_path=log,
                watch=output,
                kill_at_lines=max(1, round(fraction * reference.lines)),
                timeout=timeout,
            )
            resumes = _resume_until_done(command, log, timeout)
            after = client.stats(base_url)
            extra, _ = refetched(after, reference_stats)
            never = sum(
                1 for p, n in reference_stats["paths"].items() if after["paths"].get(p, 0) < 1 <= n
            )
            out = audit_jsonl(output)
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
            f"{f.output.doubled:>4} {f.output.bad_lines:>4} "
            f"{'yes' if f.output.torn else 'no':>5} {f.refetched_requests:>10} "
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
