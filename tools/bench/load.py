"""Load: ``python -m enrich`` over many URLs with transient and permanent failures.

    python -m tools.bench load [--urls 100000] [--baseline-urls 20000] [--concurrency 200]
                         [--transient-share 0.05] [--transient-failures 2]
                         [--permanent-share 0.01] [--pad 0] [--seed 8]

One demo site (``tools.demo_site``) serves every run: ``--transient-share`` of its pages fail
their first ``--transient-failures`` requests (half with 503, half by resetting the connection),
then succeed. Each run's input is a stage 2 output listing N URLs: that share of transient pages,
``--permanent-share`` of URLs that always fail (half answer 500 until the retries run out, half
404), and ordinary pages, shuffled. ``python -m enrich`` runs as a child at ``--concurrency``
(to the one host too), and afterwards:

* the site's request count for each URL says whether it was retried exactly as it should be
  (transient: failures + 1 requests; 500: the fetcher's retries + 1; others: one request);
* the output must hold every page that answers eventually, once; the ``.failed.jsonl`` sidecar
  every permanent failure, once;
* the child's peak resident memory (VmHWM, sampled every 20 ms) is compared with the baseline run's:
  the ratio is what "flat in the number of URLs" means.

Nothing here is asserted by the test suite (``tests/test_load.py`` runs a small version with
its own assertions); the exit code is 0 when every run's accounting holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from common.outputs import failed_sidecar_path
from enrich.config import EnrichmentConfig
from tools.demo_site import (
    DemoSite,
    PageKind,
    build_site,
    client,
    start_demo_site_process,
    stop_demo_site_process,
)
from tools.testing.jsonl_audit import audit_jsonl

__all__ = [
    "Accounting",
    "EnrichRun",
    "LoadInput",
    "LoadSite",
    "check_run",
    "plan_input",
    "run_enrich",
    "start_load_site",
    "write_input",
]

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
MAX_RETRIES: Final = EnrichmentConfig().max_retries
OUTSIDE: Final = "http://outside.invalid"
"""Host of the refused URLs: never in the allowed domains, never resolved."""


@dataclass
class LoadSite:
    """A demo-site process and the specification it serves."""

    site: DemoSite
    base_url: str
    process: subprocess.Popen[str]

    def stats(self) -> dict[str, int]:
        """Requests per path since the last reset."""
        return client.stats(self.base_url, timeout=60)["paths"]

    def reset(self) -> None:
        """Zero the counters and re-arm the transient failures."""
        client.reset(self.base_url, timeout=60)

    def stop(self) -> None:
        stop_demo_site_process(self.process)


def start_load_site(
    pages: int,
    seed: int,
    *,
    transient_share: float,
    transient_failures: int,
    reset_share: float = 0.5,
) -> LoadSite:
    """Start the demo site with these transient failures; its spec is built here too."""
    site = build_site(
        pages,
        seed,
        transient_share=transient_share,
        transient_failures=transient_failures,
        transient_reset_share=reset_share,
    )
    extra = [
        "--transient-share", str(transient_share),
        "--transient-failures", str(transient_failures),
        "--transient-reset-share", str(reset_share),
    ]  # fmt: skip
    process, base_url = start_demo_site_process(
        pages, seed, stderr=subprocess.DEVNULL, timeout=120, extra_args=extra
    )
    return LoadSite(site, base_url.rstrip("/"), process)


@dataclass
class LoadInput:
    """The URLs of one run, by what the site does with them (paths; URLs add the base)."""

    ordinary: list[str]
    transient: list[str]
    server_errors: list[str]
    """Always 500: retried until the retries run out, then failed."""
    not_found: list[str]
    """Always 404: failed at once."""
    refused: list[str] = field(default_factory=list)
    """Absolute URLs outside the allowed domains: failed without a request."""
    order: list[str] = field(default_factory=list)
    """Every path (or refused URL) in input order."""

    @property
    def count(self) -> int:
        return len(self.order)


def plan_input(
    site: DemoSite,
    n: int,
    *,
    transient_share: float,
    permanent_share: float,
    seed: int,
    refused: int = 0,
    refused_length: int = 200,
) -> LoadInput:
    """Choose ``n`` paths of ``site``: the transient and permanent shares, ordinary pages for
    the rest, shuffled with ``seed``; plus ``refused`` URLs outside the allowed domains, which
    make the input larger without adding fetches (``refused_length`` characters each)."""
    rng = random.Random(seed)
    transient_all = site.transient_paths()
    n_transient = round(n * transient_share)
    n_permanent = round(n * permanent_share)
    errors_all = site.paths_of_kind(PageKind.ERROR)
    broken_all = list(site.broken_paths)
    n_errors = min(len(errors_all), n_permanent - n_permanent // 2)
    n_broken = min(len(broken_all), n_permanent - n_errors)
    if n_transient > len(transient_all):
        raise ValueError(
            f"the site has {len(transient_all)} transient pages, {n_transient} wanted: "
            f"build it with more pages or a larger transient share"
        )
    transient_set = set(transient_all)
    ordinary_all = [spec.path for spec in site.html_pages() if spec.path not in transient_set]
    n_ordinary = n - n_transient - n_errors - n_broken
    if n_ordinary > len(ordinary_all):
        raise ValueError(f"the site has {len(ordinary_all)} ordinary pages, {n_ordinary} wanted")
    plan = LoadInput(
        ordinary=rng.sample(ordinary_all, n_ordinary),
        transient=rng.sample(transient_all, n_transient),
        server_errors=rng.sample(errors_all, n_errors),
        not_found=rng.sample(broken_all, n_broken),
    )
    plan.order = [*plan.ordinary, *plan.transient, *plan.server_errors, *plan.not_found]
    rng.shuffle(plan.order)
    if refused:
        plan.refused = [f"{OUTSIDE}/{k}/" + "r" * refused_length for k in range(refused)]
        # Spread over the input so the fetched pages are too.
        step = max(1, len(plan.order)) / refused
        merged = [(k * step, 1, url) for k, url in enumerate(plan.refused)]
        merged += [(float(k), 0, path) for k, path in enumerate(plan.order)]
        plan.order = [item for _, _, item in sorted(merged)]
    return plan


def write_input(plan: LoadInput, base_url: str, path: Path, *, pad: int = 0) -> dict[str, str]:
    """Write ``plan`` as a stage 2 output at ``path``; return each URL's path.

    Every URL is listed as a valid HTML page (as if the permanent failures broke after
    validation). ``pad`` adds a query of that many characters to every URL (the site ignores
    it): long URLs make memory that grows with the URL count easy to see.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as handle:
        for number, page in enumerate(plan.order):
            url = page if page.startswith(OUTSIDE) else base_url + page
            if pad:
                marker = f"?n={number}&pad="
                url += marker + "x" * max(0, pad - len(marker))
            paths[url] = page
            record = {
                "url": url,
                "status": 200,
                "ok": True,
                "content_type": "text/html; charset=utf-8",
                "final_url": url,
                "redirect_chain": [],
                "error": None,
            }
            handle.write(json.dumps(record) + "\n")
    return paths


@dataclass
class EnrichRun:
    """One ``python -m enrich`` child: how it ended and what it cost."""

    exit_code: int
    seconds: float
    peak_rss_kib: int
    output: Path
    failed: Path
    log: Path


def run_enrich(
    input_file: Path,
    work_dir: Path,
    *,
    concurrency: int,
    allowed_domain: str = "127.0.0.1",
    timeout: float = 1800.0,
) -> EnrichRun:
    """Run ``python -m enrich`` on ``input_file``, sampling its peak RSS as it runs.

    A child still running after ``timeout`` seconds is killed (exit code -9).
    """
    output = work_dir / "enrichment_output.jsonl"
    log = work_dir / "enrich.log"
    command = [
        sys.executable, "-m", "enrich",
        "--input", str(input_file),
        "--output", str(output),
        "--checkpoint-dir", str(work_dir / "checkpoints"),
        "--concurrency", str(concurrency),
        "--per-host", str(concurrency),
        "--allowed-domain", allowed_domain,
    ]  # fmt: skip
    work_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    start = time.monotonic()
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log_handle, stderr=subprocess.STDOUT
        )
    peak = 0
    deadline = start + timeout
    while True:
        # Not wait4's ru_maxrss: Linux carries the parent's RSS at fork into it, so it would
        # measure this process. VmHWM is the peak of the child's own (post-exec) memory.
        peak = max(peak, _vm_hwm_kib(process.pid))
        try:
            process.wait(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                break
    return EnrichRun(
        exit_code=process.returncode,
        seconds=time.monotonic() - start,
        peak_rss_kib=peak,
        output=output,
        failed=failed_sidecar_path(output),
        log=log,
    )


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident memory so far (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Accounting:
    """What a load run did with its URLs, and every way it differs from what it should do."""

    urls: int
    written: int
    failed: int
    refused: int
    """URLs outside the allowed domains in the failed sidecar (never requested)."""
    transient_retried: int
    """Transient pages requested exactly failures + 1 times and written."""
    server_errors_retried: int
    """500 pages requested exactly retries + 1 times and in the failed sidecar."""
    requests: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run(
    plan: LoadInput,
    urls_to_paths: dict[str, str],
    run: EnrichRun,
    requests_per_path: dict[str, int],
    *,
    transient_failures: int,
    max_retries: int = MAX_RETRIES,
) -> Accounting:
    """Compare a finished run's outputs and the site's request counts with ``plan``."""
    problems: list[str] = []
    if run.exit_code != 0:
        problems.append(f"python -m enrich exited with {run.exit_code} (log: {run.log})")
    output = audit_jsonl(run.output, key=lambda url: urls_to_paths.get(url, url))
    failed = audit_jsonl(run.failed, key=lambda url: urls_to_paths.get(url, url))
    for name, audit in (("output", output), ("failed sidecar", failed)):
        if audit.torn:
            problems.append(f"{name} {audit.path}: torn last line")
        if audit.bad_lines:
            problems.append(f"{name} {audit.path}: {audit.bad_lines} lines that are not records")
        if audit.doubled:
            problems.append(f"{name} {audit.path}: {audit.doubled} records written twice")
    succeed = {*plan.ordinary, *plan.transient}
    fail = {*plan.server_errors, *plan.not_found, *plan.refused}
    _compare(problems, "output", set(output.urls), succeed)
    _compare(problems, "failed sidecar", set(failed.urls), fail)

    expected = {
        **dict.fromkeys(plan.ordinary, 1),
        **dict.fromkeys(plan.not_found, 1),
        **dict.fromkeys(plan.transient, transient_failures + 1),
        **dict.fromkeys(plan.server_errors, max_retries + 1),
    }
    wrong = {
        path: (requests_per_path.get(path, 0), want)
        for path, want in expected.items()
        if requests_per_path.get(path, 0) != want
    }
    if wrong:
        sample = ", ".join(
            f"{p}: {got} (want {want})" for p, (got, want) in list(wrong.items())[:5]
        )
        problems.append(f"{len(wrong)} URLs requested the wrong number of times, e.g. {sample}")
    transient_retried = sum(1 for p in plan.transient if p not in wrong and output.urls.get(p) == 1)
    errors_retried = sum(
        1 for p in plan.server_errors if p not in wrong and failed.urls.get(p) == 1
    )
    return Accounting(
        urls=plan.count,
        written=output.lines,
        failed=failed.lines,
        refused=sum(1 for url in plan.refused if failed.urls.get(url) == 1),
        transient_retried=transient_retried,
        server_errors_retried=errors_retried,
        requests=sum(requests_per_path.get(p, 0) for p in expected),
        problems=problems,
    )


def _compare(problems: list[str], name: str, got: set[str], want: set[str]) -> None:
    missing, extra = want - got, got - want
    if missing:
        problems.append(f"{name}: {len(missing)} records missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{name}: {len(extra)} unexpected records, e.g. {sorted(extra)[:3]}")


@dataclass
class SizeResult:
    size: int
    run: EnrichRun
    accounting: Accounting


def run_size(
    load_site: LoadSite, size: int, work_dir: Path, args: argparse.Namespace
) -> SizeResult:
    """One load run of ``size`` URLs against ``load_site`` (its counters reset first)."""
    plan = plan_input(
        load_site.site,
        size,
        transient_share=args.transient_share,
        permanent_share=args.permanent_share,
        seed=args.seed + size,
    )
    input_file = work_dir / "validation_output.jsonl"
    paths = write_input(plan, load_site.base_url, input_file, pad=args.pad)
    load_site.reset()
    run = run_enrich(input_file, work_dir, concurrency=args.concurrency, timeout=args.timeout)
    accounting = check_run(
        plan, paths, run, load_site.stats(), transient_failures=args.transient_failures
    )
    return SizeResult(size, run, accounting)


def _print_result(result: SizeResult) -> None:
    run, acc = result.run, result.accounting
    print(
        f"  {result.size:>9,} URLs: exit {run.exit_code}, {run.seconds:7.1f} s "
        f"({acc.urls / run.seconds:,.0f} URLs/s), peak RSS {run.peak_rss_kib / 1024:7.1f} MiB"
    )
    print(
        f"             written {acc.written:,}, failed {acc.failed:,}; transient pages retried "
        f"and written {acc.transient_retried:,}; 500s retried to the end {acc.server_errors_retried:,}"
        f"; requests {acc.requests:,}"
    )
    for problem in acc.problems:
        print(f"             PROBLEM: {problem}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--baseline-urls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--transient-share", type=float, default=0.05)
    parser.add_argument("--transient-failures", type=int, default=2)
    parser.add_argument("--permanent-share", type=float, default=0.01)
    parser.add_argument("--pad", type=int, default=0, help="query characters added to each URL")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.baseline_urls <= args.urls:
        print("error: need 0 < --baseline-urls <= --urls", file=sys.stderr)
        return 2
    if not 1 <= args.transient_failures <= MAX_RETRIES:
        print(f"error: --transient-failures must be 1 to {MAX_RETRIES}", file=sys.stderr)
        return 2
    # Enough pages for the largest run's ordinary and transient pages, with room to spare.
    pages = round(args.urls * 1.1) + 100
    print(
        f"python {sys.version.split()[0]} on {os.cpu_count()} cores; demo site of {pages:,} "
        f"pages, {args.transient_share:.0%} transient ({args.transient_failures} failures each, "
        f"half 503, half connection reset), {args.permanent_share:.0%} permanent failures; "
        f"concurrency {args.concurrency}"
    )
    load_site = start_load_site(
        pages,
        args.seed,
        transient_share=args.transient_share * 1.1,
        transient_failures=args.transient_failures,
    )
    results: list[SizeResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="load-") as tmp:
            for size in (args.baseline_urls, args.urls):
                result = run_size(load_site, size, Path(tmp) / str(size), args)
                _print_result(result)
                results.append(result)
    finally:
        load_site.stop()
    base, big = results
    ratio = big.run.peak_rss_kib / base.run.peak_rss_kib
    print(
        f"  peak RSS at {big.size:,} / at {base.size:,} URLs: {ratio:.2f}x "
        f"({big.size / base.size:.0f}x the URLs)"
    )
    return 0 if all(r.accounting.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
