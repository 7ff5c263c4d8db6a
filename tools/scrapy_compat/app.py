"""Run Scrapy's own tests stock and with the checkpoint components on; print the difference.

``python -m tools.scrapy_compat [--modules test_crawl,test_engine] [--workdir DIR]``

1. Fetches the sdist of the installed Scrapy version (``pip download --no-deps --no-binary
   scrapy scrapy==VERSION``: Scrapy's sources, its build dependencies as wheels) into the work
   directory (default: ``resumable-crawl-scrapy-compat`` in the system's temporary directory,
   never the repository) and unpacks it.
2. Makes a scratch virtualenv there with that Scrapy, this project's runtime dependencies and
   Scrapy's test dependencies (reused on the next run).
3. Runs the chosen test modules of Scrapy's ``tests/`` twice: stock, then with
   :mod:`tools.scrapy_compat.plugin`, which switches the middleware, the scheduler and the
   pipeline on as defaults for every crawler, with a fresh checkpoint and data directory per
   test.
4. Prints both pass counts, every test that passes stock but not with the components (those
   whose expectation truly conflicts with resuming are listed with the reason), and what the
   components did: crawls that opened a checkpoint, their final statuses, records written,
   requests journaled.

Exit code: 0 when nothing that passes stock fails with the components beyond the named
conflicts, 1 otherwise, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

__all__ = ["DEFAULT_MODULES", "KNOWN_CONFLICTS", "main"]

REPO_ROOT = Path(__file__).resolve().parents[2]

# The modules issue 14 names: crawling, the engine, scheduling, closing, signals, start
# requests, depth, downloader middlewares, pipelines, feeds, dupefilters, requests.
DEFAULT_MODULES = (
    "test_crawl",
    "test_engine",
    "test_engine_close_spider",
    "test_engine_download",
    "test_engine_loop",
    "test_engine_stop_download_bytes",
    "test_engine_stop_download_headers",
    "test_scheduler",
    "test_scheduler_base",
    "test_closespider",
    "test_crawler",
    "test_signals",
    "test_spider_start",
    "test_spidermiddleware_depth",
    "test_spidermiddleware_start",
    "test_downloadermiddleware",
    "test_downloadermiddleware_retry",
    "test_pipelines",
    "test_pipeline_crawl",
    "test_feedexport",
    "test_feedexport_batch",
    "test_dupefilters",
    "test_request_attribute_binding",
    "test_request_cb_kwargs",
    "test_request_dict",
    "test_request_left",
)
QUICK_MODULES = ("test_crawl", "test_closespider", "test_pipeline_crawl", "test_spider_start")

# Scrapy's test dependencies (its tox.ini), for the scratch virtualenv.
TEST_REQUIREMENTS = (
    "attrs",
    "pexpect>=4.8.0",
    "psutil",
    "pyftpdlib>=2.0.1",
    "pygments",
    "pytest>=8.4.1",
    "pytest-rerunfailures",
    "pytest-timeout",
    "sybil>=1.3.0",
    "pytest-twisted>=1.14.3",
    "testfixtures",
)

_SAME_CRAWL_TWICE = (
    "runs the same spider with the same arguments twice in one checkpoint directory (only "
    "DOWNLOAD_DELAY, which changes how fast, not what, differs): the second run is the "
    "completed crawl run again, so it crawls nothing (checkpoint_already_completed)"
)
_START_ERROR_LOGGED = (
    "counts ERROR log records: an exception in start() closes the spider as start_error, "
    "which fails the stage, and the checkpoint logs a failed stage at ERROR (3 records)"
)

_SAME_SPIDER_NEW_CLASS_ATTRIBUTE = (
    "runs the same spider with the same arguments and settings several times in one checkpoint "
    "directory, changing only a class attribute between runs: the later runs are the completed "
    "crawl run again (checkpoint_already_completed)"
)
_JOBDIR = (
    "expects JOBDIR's disk queues (scheduler/unserializable); CheckpointScheduler keeps the "
    "frontier with the checkpoint (JSON) and ignores JOBDIR, with a warning"
)
_PIPELINE_WITHOUT_CRAWLER = (
    "builds every ITEM_PIPELINES_BASE entry with no arguments; CheckpointPipeline is built "
    "from the crawler (from_crawler), so the test's own manager fails before it can warn"
)

# Test node id (or a part of one) -> why its expectation conflicts with resuming.
KNOWN_CONFLICTS: dict[str, str] = {
    "tests.test_crawl.TestCrawl::test_fixed_delay": _SAME_CRAWL_TWICE,
    "tests.test_crawl.TestCrawl::test_randomized_delay": _SAME_CRAWL_TWICE,
    "tests.test_crawl.TestCrawl::test_start_bug_before_yield": _START_ERROR_LOGGED,
    "tests.test_crawl.TestCrawl::test_start_bug_yielding": _START_ERROR_LOGGED,
    "tests.test_engine_loop.TestMain::test_start_error": _START_ERROR_LOGGED,
    "tests.test_crawler.TestCrawler::test_get_downloader_middleware": (
        _SAME_SPIDER_NEW_CLASS_ATTRIBUTE
    ),
    "tests.test_crawler.TestCrawler::test_get_extension": _SAME_SPIDER_NEW_CLASS_ATTRIBUTE,
    "tests.test_crawler.TestCrawler::test_get_item_pipeline": _SAME_SPIDER_NEW_CLASS_ATTRIBUTE,
    "tests.test_crawler.TestCrawler::test_get_spider_middleware": (
        _SAME_SPIDER_NEW_CLASS_ATTRIBUTE
    ),
    "tests.test_scheduler::test_unserializable_requests": _JOBDIR,
    "tests.test_pipelines.TestCustomPipelineManager::test_integration_no_async_not_subclass": (
        _PIPELINE_WITHOUT_CRAWLER
    ),
}


@dataclass
class Outcomes:
    """Outcome per test id from a JUnit XML report."""

    by_test: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Outcomes:
        by_test: dict[str, str] = {}
        # The report pytest just wrote in our own work directory, not untrusted input.
        for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
            test = f"{case.get('classname')}::{case.get('name')}"
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped" and outcome == "passed":
                    outcome = "skipped"
            by_test[test] = outcome
        return cls(by_test)

    def passed(self) -> set[str]:
        return {t for t, o in self.by_test.items() if o == "passed"}


class SetupError(Exception):
    """Fetching Scrapy's sources or making the scratch virtualenv failed."""


def run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, check=False)  # noqa: S603 - our argv
    if result.returncode != 0:
        raise SetupError(f"{' '.join(command[:4])} ... exited {result.returncode}")


def fetch_sources(workdir: Path, scrapy_version: str) -> Path:
    """Scrapy's sdist for ``scrapy_version``, unpacked under ``workdir``."""
    tree = workdir / f"scrapy-{scrapy_version}"
    if (tree / "tests").is_dir():
        return tree
    archive = workdir / f"scrapy-{scrapy_version}.tar.gz"
    if not archive.exists():
        run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps"),
                *("--no-binary", "scrapy", f"scrapy=={scrapy_version}", "-d", str(workdir)),
            ]
        )
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return tree


def scratch_venv(workdir: Path, scrapy_version: str) -> Path:
    """A virtualenv with Scrapy, this project's dependencies and Scrapy's test dependencies."""
    venv = workdir / "venv"
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if marker.exists():
        return python
    run([sys.executable, "-m", "venv", str(venv)])
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        f"scrapy=={scrapy_version}",
        *(d for d in project["dependencies"] if not d.startswith("scrapy")),
        *TEST_REQUIREMENTS,
    ]
    run([str(python), "-m", "pip", "install", "-q", *requirements])
    marker.write_text("ok\n")
    return python


def run_tests(
    python: Path,
    tree: Path,
    modules: list[str],
    junit: Path,
    *,
    components: bool,
    report: Path,
    timeout: int,
) -> Outcomes:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    command = [
        *(str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"),
        *("--timeout", str(timeout), "--junitxml", str(junit), "-o", "junit_family=xunit1"),
    ]
    if components:
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["SCRAPY_COMPAT_REPORT"] = str(report)
        report.unlink(missing_ok=True)
        command += ["-p", "tools.scrapy_compat.plugin"]
    command += [f"tests/{m}.py" for m in modules]
    label = "with the checkpoint components" if components else "stock"
    print(f"--- Scrapy's tests, {label}: {len(modules)} modules", flush=True)
    subprocess.run(command, cwd=tree, env=env, check=False)  # noqa: S603 - our argv, no shell
    if not junit.exists():
        raise SetupError(f"pytest wrote no report ({junit})")
    return Outcomes.read(junit)


def conflict_reason(test: str) -> str | None:
    for prefix, reason in KNOWN_CONFLICTS.items():
        if test.startswith(prefix) or prefix in test:
            return reason
    return None


def summarize(stock: Outcomes, ours: Outcomes, report: Path) -> int:
    stock_passed, ours_passed = stock.passed(), ours.passed()
    regressions = sorted(stock_passed - ours_passed)
    explained = {t: r for t in regressions if (r := conflict_reason(t)) is not None}
    unexplained = [t for t in regressions if t not in explained]
    print()
    print(f"stock:                  {len(stock_passed)} passed of {len(stock.by_test)}")
    print(f"with the components:    {len(ours_passed)} passed of {len(ours.by_test)}")
    print(f"pass stock, fail ours:  {len(regressions)} ({len(explained)} named conflicts)")
    for test in unexplained:
        print(f"  FAIL {test} ({ours.by_test.get(test, 'missing')})")
    for test, reason in explained.items():
        print(f"  conflict {test}: {reason}")
    gained = sorted(ours_passed - stock_passed)
    if gained:
        print(f"pass ours, not stock:   {len(gained)}")
    lines = [json.loads(x) for x in report.read_text().splitlines()] if report.exists() else []
    crawls = [c for line in lines for c in line["crawls"]]
    opened = [c for c in crawls if c["opened"]]
    print()
    print(
        f"components ran: {sum(1 for x in lines if x['checkpoint_files'])} of {len(lines)} tests "
        f"left a checkpoint file; {len(opened)} of {len(crawls)} crawls opened one"
    )
    statuses = Counter(c["status"] for c in opened)
    reasons = Counter(c["reason"] for c in crawls)
    print(f"  final statuses: {dict(statuses.most_common())}")
    print(f"  close reasons:  {dict(reasons.most_common(8))}")
    print(
        f"  records written {sum(c['items_written'] for c in crawls)}, requests journaled "
        f"{sum(c['requests_journaled'] for c in crawls)}, output lines "
        f"{sum(x['output_lines'] for x in lines)}"
    )
    return 1 if unexplained else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.scrapy_compat",
        description="Scrapy's own tests, stock and with the checkpoint components switched on.",
    )
    parser.add_argument(
        "--modules",
        help="comma-separated test modules of Scrapy's tests/ (default: the 26 of issue 14; "
        "'quick' for four)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "resumable-crawl-scrapy-compat",
        help="where the sdist, the scratch virtualenv and the reports go",
    )
    parser.add_argument("--timeout", type=int, default=180, help="per test, seconds")
    parser.add_argument(
        "--reuse-stock", action="store_true", help="reuse the stock report of an earlier run"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="print the difference of the last run's reports again, running nothing",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.modules == "quick":
        modules = list(QUICK_MODULES)
    elif args.modules:
        modules = [m.strip().removesuffix(".py") for m in args.modules.split(",") if m.strip()]
    else:
        modules = list(DEFAULT_MODULES)
    scrapy_version = version("scrapy")
    workdir: Path = args.workdir
    if REPO_ROOT in workdir.resolve().parents or workdir.resolve() == REPO_ROOT:
        print(f"error: --workdir {workdir} is inside the repository", file=sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "components.jsonl"
    stock_xml, ours_xml = workdir / "stock.xml", workdir / "components.xml"
    if args.report_only:
        if not (stock_xml.exists() and ours_xml.exists()):
            print(f"error: no reports of an earlier run in {workdir}", file=sys.stderr)
            return 2
        return summarize(Outcomes.read(stock_xml), Outcomes.read(ours_xml), report)
    try:
        tree = fetch_sources(workdir, scrapy_version)
        missing = [m for m in modules if not (tree / "tests" / f"{m}.py").exists()]
        if missing:
            print(f"error: no such test module in Scrapy {scrapy_version}: {missing}")
            return 2
        python = scratch_venv(workdir, scrapy_version)
        if args.reuse_stock and stock_xml.exists():
            stock = Outcomes.read(stock_xml)
        else:
            stock_xml.unlink(missing_ok=True)
            stock = run_tests(
                python,
                tree,
                modules,
                stock_xml,
                components=False,
                report=report,
                timeout=args.timeout,
            )
        ours_xml.unlink(missing_ok=True)
        ours = run_tests(
            python, tree, modules, ours_xml, components=True, report=report, timeout=args.timeout
        )
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nScrapy {scrapy_version}, modules: {', '.join(modules)}")
    return summarize(stock, ours, report)
