"""The two Scrapy stages end to end: ``scrapy crawl discovery`` / ``validation`` as subprocesses
from the repository root against a local demo site (300 pages, seed 3, one server per module).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests._demo_site import serving_demo_site
from tools.demo_site import (
    DemoSite,
    PageKind,
    build_site,
    client,
)
from tools.testing.crawl import (
    DISCOVERY_OUTPUT,
    VALIDATION_OUTPUT,
    LineCounter,
)
from tools.testing.jsonl_audit import audit_jsonl

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGES, SEED = 300, 3
DISCOVERY_FIELDS = {"url", "depth", "referrer", "status", "discovered_at"}
VALIDATION_FIELDS = {"url", "status", "ok", "content_type", "final_url", "redirect_chain", "error"}


@dataclass
class Site:
    spec: DemoSite
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serving_demo_site(PAGES, SEED) as base_url:
        yield Site(build_site(PAGES, SEED), base_url)


def scrapy(
    spider: str,
    data_dir: Path,
    *args: str,
    settings: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", spider, *args]
    merged = {"DATA_DIR": str(data_dir), "CHECKPOINT_DIR": str(data_dir / "checkpoints")}
    merged.update(settings or {})
    for name, value in merged.items():
        command += ["-s", f"{name}={value}"]
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def checkpoint_state(data_dir: Path, stage: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((data_dir / "checkpoints" / f"{stage}.json").read_text())
    return state


def records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path}: torn last line"
    return [json.loads(line) for line in data.splitlines()]


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-4000:]


@dataclass
class Discovered:
    data_dir: Path
    output: Path
    result: subprocess.CompletedProcess[str]
    requests: int


@pytest.fixture(scope="module")
def discovered(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Discovered:
    data_dir = tmp_path_factory.mktemp("discovery")
    before = client.stats(site.base_url)["requests"]
    result = scrapy("discovery", data_dir, "-a", f"start_url={site.base_url}/")
    requests = client.stats(site.base_url)["requests"] - before
    return Discovered(data_dir, data_dir / DISCOVERY_OUTPUT, result, requests)


# Discovery ----------------------------------------------------------------------------------------


def test_discovery_writes_one_valid_record_per_unique_url(discovered: Discovered) -> None:
    assert_ok(discovered.result)
    rows = records(discovered.output)
    urls = [row["url"] for row in rows]
    assert len(urls) == len(set(urls)), "a URL was written twice"
    for row in rows:
        assert row.keys() >= DISCOVERY_FIELDS, row
        assert isinstance(row["depth"], int) and row["depth"] >= 0
        assert row["referrer"] is None or isinstance(row["referrer"], str)
        assert row["status"] is None or isinstance(row["status"], int)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["discovered_at"]), row
    root = [row for row in rows if row["depth"] == 0]
    assert len(root) == 1 and root[0]["referrer"] is None
    assert all(row["referrer"] for row in rows if row["depth"] > 0)


def test_discovery_finds_every_page_inside_the_rules(site: Site, discovered: Discovered) -> None:
    rows = records(discovered.output)
    urls = {row["url"] for row in rows}
    expected_ok = set(site.spec.expected_ok_urls(site.base_url))
    assert len(expected_ok) == PAGES
    assert expected_ok <= urls, sorted(expected_ok - urls)[:10]
    by_url = {row["url"]: row for row in rows}
    for url in expected_ok:
        assert by_url[url]["status"] == 200, by_url[url]
    # robots.txt obeyed: /private/ pages are linked and served, but never fetched or recorded.
    assert not [u for u in urls if urlsplit(u).path.startswith("/private/")]
    assert not any(p.startswith("/private/") for p in client.stats(site.base_url)["paths"]), (
        "a robots.txt-disallowed page was requested"
    )
    # Inside the allowed domain only.
    host = urlsplit(site.base_url).netloc
    assert {urlsplit(u).netloc for u in urls} == {host}
    # Broken links, permanent errors and redirects are recorded as what they are.
    for path in site.spec.broken_paths:
        if site.url(path) in by_url:
            assert by_url[site.url(path)]["status"] == 404
    errors = site.spec.paths_of_kind(PageKind.ERROR)
    assert errors and all(by_url[site.url(p)]["status"] == 500 for p in errors)
    redirects = [p for p in site.spec.paths_of_kind(PageKind.REDIRECT) if site.url(p) in by_url]
    assert redirects
    for path in redirects:
        row = by_url[site.url(path)]
        assert row["status"] in (301, 302)
        assert row["redirect_to"] == site.url(site.spec.pages[path].redirect_to)


def test_discovery_checkpoint_completed_and_files_private(discovered: Discovered) -> None:
    state = checkpoint_state(discovered.data_dir, "stage1_discovery")
    assert state["status"] == "completed"
    assert state["progress"]["processed_items"] == len(records(discovered.output))
    # Stored relative to the data dir, so a moved data dir still resumes (issue 16 item 5).
    assert state["output_file"] == discovered.output.relative_to(discovered.data_dir).as_posix()
    assert state["metadata"]["spider_name"] == "discovery"
    files = [p for p in discovered.data_dir.rglob("*") if p.is_file()]
    assert discovered.output in files
    assert discovered.data_dir / "checkpoints/stage1_discovery.requests.jsonl" in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} readable by others"


def test_discovery_records_every_linked_url(site: Site, discovered: Discovered) -> None:
    """Files (PDF, PNG), broken links and error pages are URLs of the site too."""
    urls = {row["url"] for row in records(discovered.output)}
    linked = set(site.spec.expected_linked_urls(site.base_url))
    assert linked <= urls, sorted(linked - urls)[:10]


def test_second_discovery_run_fetches_nothing(site: Site, discovered: Discovered) -> None:
    before_bytes = discovered.output.read_bytes()
    before = client.stats(site.base_url)
    result = scrapy("discovery", discovered.data_dir, "-a", f"start_url={site.base_url}/")
    after = client.stats(site.base_url)
    assert_ok(result)
    fetched = {
        path: n - before["paths"].get(path, 0)
        for path, n in after["paths"].items()
        if n != before["paths"].get(path, 0)
    }
    assert set(fetched) <= {"/robots.txt"}, fetched
    assert discovered.output.read_bytes() == before_bytes
    assert checkpoint_state(discovered.data_dir, "stage1_discovery")["status"] == "completed"


def _pages_fetched(site: Site, before: dict[str, Any]) -> set[str]:
    """The paths the demo site served since ``before`` (its stats then), robots.txt aside."""
    after = client.stats(site.base_url)["paths"]
    return {p for p, n in after.items() if n != before["paths"].get(p, 0)} - {"/robots.txt"}


def test_a_standalone_crawl_uses_the_store_its_directory_holds(site: Site, tmp_path: Path) -> None:
    """CHECKPOINT_STORE unset means the store CHECKPOINT_DIR holds (as the orchestrator and
    python -m enrich detect it): a crawl paused with sqlite resumes from sqlite instead of
    starting a second, JSON checkpoint beside it; a CHECKPOINT_STORE that differs from what the
    directory holds is refused in select_store's one line, fetching and changing nothing."""
    from common.manager import UnifiedCheckpointManager
    from common.stores import SqliteStore

    cps = tmp_path / "checkpoints"
    start = ("-a", f"start_url={site.base_url}/")
    paused = scrapy(
        "discovery",
        tmp_path,
        *start,
        settings={"CHECKPOINT_STORE": "sqlite", "CLOSESPIDER_ITEMCOUNT": "5"},
    )
    assert_ok(paused)
    before_files = {p.name for p in cps.iterdir()}
    assert "checkpoints.sqlite3" in before_files and "stage1_discovery.json" not in before_files

    stats = client.stats(site.base_url)
    digest = {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file() and p.suffix != ".lock" and not p.name.endswith("-shm")
    }
    refused = scrapy("discovery", tmp_path, *start, settings={"CHECKPOINT_STORE": "json"})
    assert refused.returncode == 1, refused.stderr[-4000:]
    errors = [line for line in refused.stderr.splitlines() if " ERROR: " in line]
    assert len(errors) == 1, errors
    assert errors[0].endswith(
        f"[common.scrapy] ERROR: {cps} holds sqlite checkpoints (1 stage); omit "
        "CHECKPOINT_STORE to use them, or set CHECKPOINT_FRESH=True to start over with json "
        "(nothing was changed)"
    ), errors[0]
    assert "Traceback" not in refused.stderr
    assert _pages_fetched(site, stats) == set()
    assert {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file() and p.suffix != ".lock" and not p.name.endswith("-shm")
    } == digest

    resumed = scrapy("discovery", tmp_path, *start)  # CHECKPOINT_STORE unset
    assert_ok(resumed)
    assert not (cps / "stage1_discovery.json").exists()
    manager = UnifiedCheckpointManager(cps, store=SqliteStore(cps))
    try:
        assert manager.inspect("stage1_discovery").status == "completed"
    finally:
        manager.close()
        manager.store.close()
    urls = [row["url"] for row in records(tmp_path / DISCOVERY_OUTPUT)]
    assert len(urls) == len(set(urls)) and set(site.spec.expected_ok_urls(site.base_url)) <= set(
        urls
    )


def test_discovery_start_url_without_trailing_slash(tmp_path: Path) -> None:
    with serving_demo_site(20, 1) as base_url:
        result = scrapy("discovery", tmp_path, "-a", f"start_url={base_url}")
    assert_ok(result)
    urls = {row["url"] for row in records(tmp_path / DISCOVERY_OUTPUT)}
    assert set(build_site(20, 1).expected_ok_urls(base_url)) <= urls


# Validation ---------------------------------------------------------------------------------------


@dataclass
class Validated:
    output: Path
    result: subprocess.CompletedProcess[str]
    data_dir: Path


@pytest.fixture(scope="module")
def validated(discovered: Discovered) -> Validated:
    assert_ok(discovered.result)  # a failed discovery fails these tests, never skips them
    result = scrapy("validation", discovered.data_dir)
    return Validated(discovered.data_dir / VALIDATION_OUTPUT, result, discovered.data_dir)


def test_validation_one_record_per_discovered_url(
    discovered: Discovered, validated: Validated
) -> None:
    assert_ok(validated.result)
    discovered_urls = [row["url"] for row in records(discovered.output)]
    rows = records(validated.output)
    urls = [row["url"] for row in rows]
    assert len(urls) == len(set(urls)), "a URL was validated twice"
    assert set(urls) == set(discovered_urls)
    for row in rows:
        assert row.keys() >= VALIDATION_FIELDS, row
        assert isinstance(row["redirect_chain"], list)
    state = checkpoint_state(validated.data_dir, "stage2_validation")
    assert state["status"] == "completed"
    assert state["input_file"] == discovered.output.relative_to(validated.data_dir).as_posix()
    assert state["input_file_hash"]


def test_validation_records_errors_as_not_ok(site: Site, validated: Validated) -> None:
    by_url = {row["url"]: row for row in records(validated.output)}
    for url in site.spec.expected_ok_urls(site.base_url):
        row = by_url[url]
        assert (row["status"], row["ok"], row["content_type"]) == (200, True, "text/html"), row
        assert row["final_url"] == url and row["error"] is None
    broken = [site.url(p) for p in site.spec.broken_paths if site.url(p) in by_url]
    assert broken
    for url in broken:
        assert (by_url[url]["status"], by_url[url]["ok"]) == (404, False)
    for path in site.spec.paths_of_kind(PageKind.ERROR):
        row = by_url[site.url(path)]
        assert (row["status"], row["ok"]) == (500, False), row


def test_crawl_records_carry_scrapys_download_latency(
    discovered: Discovered, validated: Validated
) -> None:
    """Each answered fetch records how long it took (what ``results`` ranks hosts by)."""
    for output in (discovered.output, validated.output):
        rows = records(output)
        answered = [row for row in rows if row["status"] is not None]
        assert answered
        for row in answered:
            assert isinstance(row["download_latency"], float), row
            assert 0 <= row["download_latency"] < 600, row
        for row in rows:
            if row["status"] is None:
                assert row.get("download_latency") is None, row


def test_validation_follows_redirects(site: Site, validated: Validated) -> None:
    by_url = {row["url"]: row for row in records(validated.output)}
    redirects = [p for p in site.spec.paths_of_kind(PageKind.REDIRECT) if site.url(p) in by_url]
    assert redirects
    for path in redirects:
        chain = [site.url(p) for p in site.spec.redirect_chain(path)]
        row = by_url[site.url(path)]
        assert row["redirect_chain"] == chain, row
        assert (row["status"], row["ok"], row["final_url"]) == (200, True, chain[-1]), row


# Changed input and interruptions ------------------------------------------------------------------


def interrupt_when(
    command: Sequence[str],
    output: Path,
    lines: int,
    sig: signal.Signals,
    timeout: float = 60,
    times: int = 1,
    also: Callable[[], bool] = lambda: True,
    log: Path | None = None,
) -> int:
    """Run ``command``; send ``sig`` (``times`` in a row) once ``output`` holds ``lines`` lines
    and ``also()`` holds.

    Returns the exit code.
    """
    counter = LineCounter(output)
    process = subprocess.Popen(
        list(command),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log is not None else subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and (counter.count() < lines or not also()):
            assert time.monotonic() < deadline, "the crawl neither progressed nor ended"
            time.sleep(0.01)
        for n in range(times):
            if n and log is not None:  # the first reached Scrapy's handler before the next
                while process.poll() is None and b"Received " not in log.read_bytes():
                    assert time.monotonic() < deadline, "the signal was never handled"
                    time.sleep(0.01)
            if process.poll() is None:
                process.send_signal(sig)
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def committed_output(data_dir: Path, stage: str) -> int:
    """The output offset the stage's checkpoint has committed (0 while there is none)."""
    try:
        return int(checkpoint_state(data_dir, stage).get("journals", {}).get("output", 0))
    except (FileNotFoundError, ValueError):
        return 0


def validation_command(data_dir: Path, input_file: Path, *, paced: bool = False) -> list[str]:
    """The validation crawl; ``paced`` spreads it over a few seconds (~100 pages/s), so a
    signal sent once its output reaches some lines lands before it has finished."""
    pacing = ["-s", "DOWNLOAD_DELAY=0.01", "-s", "RANDOMIZE_DOWNLOAD_DELAY=False"]
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "validation",
        "-a",
        f"input_file={input_file}",
        "-s",
        f"DATA_DIR={data_dir}",
        "-s",
        f"CHECKPOINT_DIR={data_dir / 'checkpoints'}",
        "-s",
        "CHECKPOINT_AUTO_SAVE_INTERVAL=5",
        *(pacing if paced else []),
    ]


@pytest.mark.parametrize("interruption", ["paused", "killed"])
def test_validation_refuses_a_changed_input_unless_forced(
    site: Site, discovered: Discovered, tmp_path: Path, interruption: str
) -> None:
    input_file = tmp_path / "discovered.jsonl"
    shutil.copyfile(discovered.output, input_file)
    total = len(records(input_file))
    output = tmp_path / VALIDATION_OUTPUT
    if interruption == "paused":
        result = scrapy(
            "validation",
            tmp_path,
            "-a",
            f"input_file={input_file}",
            settings={"CLOSESPIDER_ITEMCOUNT": "40"},
        )
        assert_ok(result)
        assert checkpoint_state(tmp_path, "stage2_validation")["status"] == "paused"
    else:
        # Killed once a save has committed some output (lines on disk alone can be the
        # journal write of a save killed before its record: nothing committed yet).
        code = interrupt_when(
            validation_command(tmp_path, input_file, paced=True),
            output,
            150,
            signal.SIGKILL,
            also=lambda: committed_output(tmp_path, "stage2_validation") > 0,
        )
        assert code == -signal.SIGKILL
        assert checkpoint_state(tmp_path, "stage2_validation")["status"] == "running"
    partial = output.read_bytes()
    assert 0 < len(partial.splitlines()) < total

    new_url = site.url("/about/?added=1")
    with input_file.open("a") as handle:
        handle.write(json.dumps({"url": new_url, "depth": 1, "referrer": None}) + "\n")

    refused = scrapy("validation", tmp_path, "-a", f"input_file={input_file}")
    assert refused.returncode != 0
    assert re.search(r"input file has changed", refused.stdout + refused.stderr, re.I)
    # Refused before any work: at most the uncommitted tail of the killed run is cut off.
    committed = checkpoint_state(tmp_path, "stage2_validation")["journals"]["output"]
    after = output.read_bytes()
    assert partial.startswith(after) and len(after) >= committed > 0
    assert checkpoint_state(tmp_path, "stage2_validation")["status"] in (
        "paused",
        "running",
        "recovering",
    )

    forced = scrapy(
        "validation",
        tmp_path,
        "-a",
        f"input_file={input_file}",
        settings={"CHECKPOINT_FORCE": "True"},
    )
    assert_ok(forced)
    final = audit_jsonl(output)
    assert not final.torn and final.bad_lines == 0
    assert final.doubled == 0, final.doubled_urls
    expected = {row["url"] for row in records(input_file)}
    assert final.url_set == expected
    assert new_url in final.url_set
    assert checkpoint_state(tmp_path, "stage2_validation")["status"] == "completed"


@pytest.mark.parametrize(
    ("sig", "times"),
    [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 2)],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice"],
)
def test_a_signal_pauses_and_the_same_command_finishes(
    discovered: Discovered, tmp_path: Path, sig: signal.Signals, times: int
) -> None:
    """SIGINT/SIGTERM: save, paused, exit 0. A second Ctrl-C stops at once; still resumable."""
    input_file = tmp_path / "discovered.jsonl"
    shutil.copyfile(discovered.output, input_file)
    output = tmp_path / VALIDATION_OUTPUT
    log = tmp_path / "interrupted.log"
    code = interrupt_when(
        validation_command(tmp_path, input_file, paced=True), output, 30, sig, times=times, log=log
    )
    state = checkpoint_state(tmp_path, "stage2_validation")
    if times == 1:
        assert code == 0
        assert state["status"] == "paused"
    elif b"forcing unclean shutdown" in log.read_bytes():
        # The second Ctrl-C stopped the crawl at once: exit 130, no graceful close. Whatever
        # was saved last is valid and the next run resumes from it.
        assert code == 128 + signal.SIGINT
        assert state["status"] in ("paused", "running")
    else:  # the graceful close finished before the second signal was handled
        assert code == 0 and state["status"] == "paused"
    assert 0 < len(output.read_bytes().splitlines()) < len(records(input_file))
    result = subprocess.run(
        validation_command(tmp_path, input_file),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_ok(result)
    final = audit_jsonl(output)
    assert final.doubled == 0 and not final.torn and final.bad_lines == 0
    assert final.url_set == {row["url"] for row in records(input_file)}
    assert checkpoint_state(tmp_path, "stage2_validation")["status"] == "completed"


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    result = scrapy("validation", tmp_path, "-a", f"input_file={missing}")
    assert_one_line_failure(result, str(missing), "does not exist")
    assert not os.path.exists(tmp_path / VALIDATION_OUTPUT)


def test_completed_validation_restarts_when_its_input_changed(
    site: Site, discovered: Discovered, tmp_path: Path
) -> None:
    input_file = tmp_path / "discovered.jsonl"
    shutil.copyfile(discovered.output, input_file)
    assert_ok(scrapy("validation", tmp_path, "-a", f"input_file={input_file}"))
    assert checkpoint_state(tmp_path, "stage2_validation")["status"] == "completed"
    unchanged = scrapy("validation", tmp_path, "-a", f"input_file={input_file}")
    assert_ok(unchanged)
    assert "already completed" in unchanged.stderr

    new_url = site.url("/contact/?added=1")
    with input_file.open("a") as handle:
        handle.write(json.dumps({"url": new_url}) + "\n")
    result = scrapy("validation", tmp_path, "-a", f"input_file={input_file}")
    assert_ok(result)
    assert "input file has changed" in result.stderr
    final = audit_jsonl(tmp_path / VALIDATION_OUTPUT)
    assert final.doubled == 0 and not final.torn and final.bad_lines == 0
    assert final.url_set == {row["url"] for row in records(input_file)}
    state = checkpoint_state(tmp_path, "stage2_validation")
    assert state["status"] == "completed"
    assert state["progress"]["processed_items"] == len(final.urls)


def test_a_second_process_on_the_same_stage_is_refused(
    discovered: Discovered, tmp_path: Path
) -> None:
    input_file = tmp_path / "discovered.jsonl"
    shutil.copyfile(discovered.output, input_file)
    output = tmp_path / VALIDATION_OUTPUT
    counter = LineCounter(output)
    # Slowed down so it is still running when the second process has started up.
    slow = ["-s", "DOWNLOAD_DELAY=0.03", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2"]
    first = subprocess.Popen(
        [*validation_command(tmp_path, input_file), *slow],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while first.poll() is None and counter.count() < 10:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert first.poll() is None, "the first run ended before the second could start"
        second = scrapy("validation", tmp_path, "-a", f"input_file={input_file}")
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.returncode != 0
    assert "another run of this stage is in progress" in second.stderr
    final = audit_jsonl(output)
    assert final.doubled == 0 and not final.torn and final.bad_lines == 0
    assert final.url_set == {row["url"] for row in records(input_file)}


def test_a_refused_resume_is_one_clear_error(site: Site, tmp_path: Path) -> None:
    input_file = tmp_path / "discovered.jsonl"
    input_file.write_text(
        "".join(json.dumps({"url": site.url(p)}) + "\n" for p in ("/", "/about/", "/contact/"))
    )
    paused = scrapy(
        "validation",
        tmp_path,
        "-a",
        f"input_file={input_file}",
        settings={"CLOSESPIDER_ITEMCOUNT": "1", "CONCURRENT_REQUESTS": "1"},
    )
    assert_ok(paused)
    assert checkpoint_state(tmp_path, "stage2_validation")["status"] == "paused"
    with input_file.open("a") as handle:
        handle.write(json.dumps({"url": site.url("/research/")}) + "\n")
    refused = scrapy("validation", tmp_path, "-a", f"input_file={input_file}")
    assert refused.returncode != 0
    assert "input file has changed" in refused.stderr
    for noise in (
        "Scraper slot not assigned",
        "Task exception was never retrieved",
        "Traceback (most recent call last)",
    ):
        assert noise not in refused.stderr, noise


def test_robots_txt_is_obeyed_by_requests_waiting_for_it(site: Site, tmp_path: Path) -> None:
    private = site.spec.private_paths()
    assert len(private) >= 2
    start = ",".join(site.url(p) for p in ["/", *private])
    before = client.stats(site.base_url)["paths"]
    result = scrapy("discovery", tmp_path, "-a", f"start_url={start}")
    after = client.stats(site.base_url)["paths"]
    assert_ok(result)
    fetched = {p for p in private if after.get(p, 0) > before.get(p, 0)}
    recorded = {u for u in audit_jsonl(tmp_path / DISCOVERY_OUTPUT).urls if "/private/" in u}
    assert not fetched and not recorded, (sorted(fetched), sorted(recorded))


# A crawl that fetched nothing, and bad input: not a success ---------------------------------------


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit; the reason on one error line naming ``needles``; no traceback."""
    assert result.returncode != 0, result.stderr[-3000:]
    for noise in ("Traceback", "Task exception was never retrieved", "Unhandled error"):
        assert noise not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if all(n in line for n in needles)]
    assert lines and "ERROR" in lines[0], result.stderr[-3000:]


@pytest.mark.parametrize(
    ("start_url", "error"),
    [
        ("http://127.0.0.1:1/", "ConnectionRefusedError"),
        ("http://nonexistent-host.invalid/", "Error"),
    ],
    ids=["refused", "unresolvable"],
)
def test_a_start_url_that_cannot_be_fetched_fails_the_stage(
    tmp_path: Path, start_url: str, error: str
) -> None:
    settings = {"RETRY_TIMES": "0"}
    result = scrapy("discovery", tmp_path, "-a", f"start_url={start_url}", settings=settings)
    assert_one_line_failure(result, "fetched nothing", start_url, error)
    # Its progress counts the one request it tried: not "Progress: 0.0% (1/0)".
    assert re.search(r"failed: Progress: 100\.0% \(1/1\) \| Success: 0\.0%", result.stderr), (
        result.stderr[-3000:]
    )
    state = checkpoint_state(tmp_path, "stage1_discovery")
    assert state["status"] == "failed"
    assert state["progress"]["total_items"] == state["progress"]["processed_items"] == 1
    assert start_url in state["error_message"]
    # Resumable: the next run tries the start URL again instead of "completing" with nothing.
    again = scrapy("discovery", tmp_path, "-a", f"start_url={start_url}", settings=settings)
    assert_one_line_failure(again, "fetched nothing", start_url)
    assert "already completed" not in again.stderr
    assert re.search(rf"Gave up retrying <GET {re.escape(start_url)}>", again.stderr)


@pytest.mark.parametrize(
    ("line", "reason"),
    [("not json", "not a discovery record"), ('{"depth": 1}', "'url'")],
    ids=["malformed", "keyless"],
)
def test_validation_on_a_bad_input_line_fails_with_one_line(
    site: Site, tmp_path: Path, line: str, reason: str
) -> None:
    input_file = tmp_path / "discovered.jsonl"
    input_file.write_text(json.dumps({"url": site.url("/")}) + "\n" + line + "\n")
    result = scrapy("validation", tmp_path, "-a", f"input_file={input_file}")
    assert_one_line_failure(result, f"{input_file}:2", reason)
    # Refused before it starts (the engine validates the input first), or failed if the input
    # turned bad between that check and the crawl reading it: never completed.
    state_file = tmp_path / "checkpoints" / "stage2_validation.json"
    assert not state_file.exists() or checkpoint_state(tmp_path, "stage2_validation")["status"] in (
        "failed",
        "initialized",
    )
    output = tmp_path / VALIDATION_OUTPUT
    assert not output.exists() or output.read_bytes() == b""


def test_a_refused_fresh_switch_of_store_keeps_the_old_checkpoints(
    site: Site, tmp_path: Path
) -> None:
    """CHECKPOINT_FRESH with the other CHECKPOINT_STORE switches a directory holding only this
    stage, removing the old store's checkpoints once the start goes ahead: a start refused
    over its input (rejected by the validator, or missing) or a bad setting leaves them byte
    for byte (they used to be gone before the refusal)."""
    data_dir, inputs = tmp_path / "data", tmp_path / "inputs"
    inputs.mkdir()
    good = inputs / "discovered.jsonl"
    good.write_text(json.dumps({"url": site.url("/")}) + "\n")
    bad = inputs / "bad.jsonl"
    bad.write_text(json.dumps({"url": site.url("/")}) + "\nnot json\n")
    assert_ok(scrapy("validation", data_dir, "-a", f"input_file={good}"))
    cps = data_dir / "checkpoints"
    old = {p.name for p in cps.iterdir() if p.suffix != ".lock"}
    assert "stage2_validation.json" in old and "stage2_validation.keys.jsonl" in old, old

    def files() -> dict[str, bytes]:
        return {
            str(p.relative_to(data_dir)): p.read_bytes()
            for p in sorted(data_dir.rglob("*"))
            if p.is_file() and p.suffix != ".lock"
        }

    before = files()
    switch = {"CHECKPOINT_STORE": "sqlite", "CHECKPOINT_FRESH": "True"}
    for input_file, settings, needles in (
        (bad, {}, (f"{bad}:2", "not a discovery record")),
        (good, {"CHECKPOINT_INPUT_FILE": str(inputs / "nope.jsonl")}, ("does not exist",)),
        (good, {"CHECKPOINT_MIN_SAVE_INTERVAL": "10"}, ("min_save_interval",)),
    ):
        refused = scrapy(
            "validation", data_dir, "-a", f"input_file={input_file}", settings=switch | settings
        )
        assert_one_line_failure(refused, *needles)
        assert files() == before, settings or input_file

    switched = scrapy("validation", data_dir, "-a", f"input_file={good}", settings=switch)
    assert_ok(switched)
    left = {p.name for p in cps.iterdir() if p.is_file() and p.suffix != ".lock"}
    assert left == {"checkpoints.sqlite3", "stage2_validation.requests.jsonl"}, (
        left
    )  # history stays
    assert [row["url"] for row in records(data_dir / VALIDATION_OUTPUT)] == [site.url("/")]
