"""Running crawls as real processes, for the tests and the benchmarks alike.

``crawl_command`` builds ``python -m scrapy crawl SPIDER`` for this project under a data
directory; ``run_crawl`` runs one and SIGKILLs it once its output holds a given number of
lines (progress-defined, not a guessed sleep); ``refetched`` compares the demo site's request
counters (:mod:`tools.demo_site.client`) with a reference run's.  Outputs are checked with
:func:`tools.testing.jsonl_audit.audit_jsonl`.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.demo_site.client import SiteStats

__all__ = [
    "DISCOVERY_OUTPUT",
    "REPO_ROOT",
    "VALIDATION_OUTPUT",
    "LineCounter",
    "RunResult",
    "crawl_command",
    "crawl_seconds",
    "jobdir_settings",
    "no_checkpoint_settings",
    "refetched",
    "run_crawl",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DISCOVERY_OUTPUT = Path("processed") / "stage01" / "discovery_output.jsonl"
VALIDATION_OUTPUT = Path("processed") / "stage02" / "validation_output.jsonl"


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
        process = subprocess.Popen(  # noqa: S603 - an argv the caller built, no shell
            list(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
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


def refetched(
    after: SiteStats,
    reference: SiteStats,
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
