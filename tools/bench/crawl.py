"""Crawl benchmarks: speed and memory against stock Scrapy and Crawlee; what a SIGKILL costs.

    python -m tools.bench crawl [--sites dense,demo,simple] [--crawlers ours,stock,crawlee-file,...]
                                [--dense-pages 530] [--pages 2000] [--simple-pages 1000]
                                [--seed 11] [--repeats 3] [--latency-ms 0] [--resume-repeats 3]
                                [--fractions 0.2,0.4,0.6,0.8] [--skip-throughput] [--skip-resume]
                                [--skip-kill]

(a) Pages per second and peak RSS on three demo sites (the link-dense documentation site, the
    default university site, a five-links-a-page tree): ours, stock Scrapy and Crawlee for Python
    (file and memory storage), concurrency 32, robots.txt obeyed, depth limit 10, runs
    alternating, every figure also a ratio against stock Scrapy in the same run
    (:mod:`tools.bench.crawl_speed`). Crawlee needs the ``bench`` extra.

(c) Start to first fetch on the link-dense site: stock Scrapy starting afresh against ours
    resuming after a SIGKILL at half the crawl.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.bench.crawl_speed import (
    STOCK,
    bench_peers,
    bench_resume_start,
    crawlee_available,
    print_peers,
    print_resume_start,
)
from tools.demo_site import client, start_demo_site_process, stop_demo_site_process
from tools.testing.crawl import (
    DISCOVERY_OUTPUT,
    RunResult,
    crawl_command,
    jobdir_settings,
    refetched,
    run_crawl,
)
from tools.testing.jsonl_audit import FileAudit, audit_jsonl

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


_CRAWLER_NAMES = {
    "ours": "ours",
    "no-checkpoint": "no checkpoint",
    "stock": STOCK,
    "crawlee-file": "Crawlee file",
    "crawlee-memory": "Crawlee memory",
}
_SITES = {
    "dense": ("dense", "link-dense documentation site"),
    "demo": ("university", "demo (university) site"),
    "simple": ("simple", "simple site, five links a page"),
}


def _speed(args: argparse.Namespace, work: Path) -> None:
    crawlers = [_CRAWLER_NAMES[c.strip()] for c in args.crawlers.split(",") if c.strip()]
    if not crawlee_available() and any(c.startswith("Crawlee") for c in crawlers):
        print("Crawlee for Python is not installed (pip install -e '.[bench]'): its runs skipped")
        crawlers = [c for c in crawlers if not c.startswith("Crawlee")]
    sites = [s.strip() for s in args.sites.split(",") if s.strip()]
    pages = {"dense": args.dense_pages, "demo": args.pages, "simple": args.simple_pages}
    for name in sites:
        profile, title = _SITES[name]
        process, base_url = start_demo_site_process(
            pages[name],
            args.seed,
            latency_ms=args.latency_ms,
            profile=profile,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not args.skip_throughput:
                results = bench_peers(base_url, work, crawlers, args.repeats, name)
                print_peers(results, f"(a) {title}, {pages[name]} pages, seed {args.seed}")
            if name == "dense" and not args.skip_resume and args.resume_repeats:
                records = 0
                if not args.skip_throughput and "ours" in crawlers:
                    records = int(statistics.median(results["ours"].records))
                records = records or pages[name]
                print_resume_start(
                    *bench_resume_start(base_url, work, args.resume_repeats, records)
                )
        finally:
            stop_demo_site_process(process)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench crawl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sites", default="dense,demo,simple", help="dense, demo, simple")
    parser.add_argument(
        "--crawlers",
        default="ours,stock,crawlee-file,crawlee-memory",
        help=f"any of {', '.join(_CRAWLER_NAMES)}",
    )
    parser.add_argument("--dense-pages", type=int, default=530)
    parser.add_argument("--pages", type=int, default=2000, help="demo site pages (and kills)")
    parser.add_argument("--simple-pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per crawler")
    parser.add_argument("--resume-repeats", type=int, default=3)
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
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    unknown = [c for c in args.crawlers.split(",") if c.strip() and c.strip() not in _CRAWLER_NAMES]
    unknown += [s for s in args.sites.split(",") if s.strip() and s.strip() not in _SITES]
    if unknown:
        parser.error(f"unknown crawler or site: {', '.join(unknown)}")

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; seed {args.seed}, "
        f"latency {args.latency_ms:g} ms"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    try:
        _speed(args, work)
        if not args.skip_kill:
            site, base_url = start_demo_site_process(
                args.pages, args.seed, latency_ms=args.latency_ms, stderr=subprocess.DEVNULL
            )
            try:
                print_kills(*bench_kills(base_url, work, fractions, args.timeout))
            finally:
                stop_demo_site_process(site)
    finally:
        if args.keep:
            print(f"\nwork directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
