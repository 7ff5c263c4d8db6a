"""Stages on the SQLite store, end to end with real processes.

Enrichment (``python -m enrich --store sqlite``) on the demo site is SIGKILLed twice and resumed
by a differently named worker each time; its output must equal an uninterrupted JSON-store run's,
and the CLI (``list``, ``show``, ``ledger``, which find the SQLite directory by themselves) must
report it. The orchestrator with ``--store sqlite`` runs all three stages (Scrapy included)
with every checkpoint in the database and no ``<stage>.json`` file.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from common.stores.sqlite import DATABASE_NAME
from enrich.async_enrichment import STAGE_NAME
from tests._demo_site import serving_demo_site
from tests.test_enrich_kill import read_records, reset_stats, write_validation_output
from tools.demo_site import PageKind, build_site

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PAGES = 500
SITE_SEED = 11
RUN_TIMEOUT = 90.0


def _cli(checkpoints: Path, *args: str) -> Any:
    done = subprocess.run(
        [
            sys.executable,
            "tools/checkpoint_manager_cli.py",
            "--checkpoint-dir",
            str(checkpoints),
            *args,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Enrich:
    """One data directory of ``python -m enrich``."""

    def __init__(self, directory: Path, validation: Path, *store: str) -> None:
        directory.mkdir()
        self.directory = directory
        self.validation = validation
        self.output = directory / "out.jsonl"
        self.failed = directory / "out.failed.jsonl"
        self.checkpoints = directory / "checkpoints"
        self.store = list(store)
        self.runs = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        command = [
            sys.executable,
            "-m",
            "enrich",
            "--input",
            str(self.validation),
            "--output",
            str(self.output),
            "--checkpoint-dir",
            str(self.checkpoints),
            *self.store,
        ]
        if self.store:
            command += ["--worker-id", f"run-{self.runs}"]
        log = (self.directory / f"run-{self.runs}.log").open("wb")
        with log:
            return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def run_to_end(self) -> None:
        process = self.start()
        code = process.wait(RUN_TIMEOUT)
        log = (self.directory / f"run-{self.runs}.log").read_text(errors="replace")
        assert code == 0, log[-3000:]

    def lines(self) -> int:
        try:
            return self.output.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def runs_on_disk(self) -> int:
        """The ``run_count`` of the stage's record in the database (0 before the first save).

        A run's start is saved on the saver thread: until it is on disk, a kill leaves no trace
        of that run (its output is cut back on the next start), and the file still holds the
        lines the previous run wrote after its last save.
        """
        database = self.checkpoints / DATABASE_NAME
        if not database.is_file():
            return 0
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        with contextlib.closing(connection):
            try:
                row = connection.execute(
                    "SELECT body FROM records WHERE stage = ?", (STAGE_NAME,)
                ).fetchone()
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return 0  # the first run is creating the database
                if error.sqlite_errorname.startswith("SQLITE_READONLY"):
                    # The killed run left its WAL for the next opener to recover, which a
                    # read-only connection may not do: nothing is known yet, ask again.
                    return 0
                raise
        return 0 if row is None else int(json.loads(row[0])["run_count"])


def _without_time(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        r["url"]: {k: v for k, v in r.items() if k not in ("fetched_at", "failed_at")}
        for r in records
    }


def test_enrichment_on_sqlite_killed_and_resumed_matches_a_clean_run(tmp_path: Path) -> None:
    site = build_site(PAGES, SITE_SEED)
    with serving_demo_site(PAGES, SITE_SEED, slow_ms=20) as base_url:
        ok_urls = site.expected_ok_urls(base_url)
        error_urls = [base_url + path for path in site.paths_of_kind(PageKind.ERROR)]
        assert error_urls, "the demo site should have permanent errors"
        urls = ok_urls + error_urls
        validation = tmp_path / "validation.jsonl"
        write_validation_output(validation, urls)

        reset_stats(base_url)
        reference = Enrich(tmp_path / "reference", validation)  # JSON store, uninterrupted
        reference.run_to_end()

        reset_stats(base_url)
        stage = Enrich(tmp_path / "sqlite", validation, "--store", "sqlite")
        for fraction in (0.3, 0.65):
            process = stage.start()
            deadline = time.monotonic() + RUN_TIMEOUT
            # Kill only once this run's start is on disk and it has written past the mark.
            while (
                stage.runs_on_disk() < stage.runs or stage.lines() < fraction * len(ok_urls)
            ) and process.poll() is None:
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.005)
            assert process.poll() is None, "the stage finished before it could be killed"
            process.send_signal(signal.SIGKILL)
            assert process.wait(30) == -signal.SIGKILL

            listed = _cli(stage.checkpoints, "list")["stages"]
            assert [(s["stage"], s["status"]) for s in listed] == [(STAGE_NAME, "recovering")]
            committed = listed[0]["progress"]["processed_items"]
            ledger = _cli(stage.checkpoints, "ledger", STAGE_NAME, "--limit", "5")
            stats = ledger["statistics"]
            # The ledger holds exactly what the checkpoint counts: rows and record commit
            # together, whatever the kill interrupted.
            assert stats["total"] == len(urls)
            assert sum(stats["by_status"][s] for s in ("done", "failed", "skipped")) == committed
            assert ledger["remaining"] == len(urls) - committed
            assert len(ledger["remaining_sample"]) == 5
        stage.run_to_end()

    expected, _ = read_records(reference.output)
    got, torn = read_records(stage.output)
    assert torn == 0
    assert Counter(r["url"] for r in got) == Counter(r["url"] for r in expected)  # none doubled
    assert _without_time(got) == _without_time(expected)
    failed_expected, _ = read_records(reference.failed)
    failed_got, _ = read_records(stage.failed)
    assert sorted(r["url"] for r in failed_got) == sorted(r["url"] for r in failed_expected)
    assert sorted(r["url"] for r in failed_got) == sorted(error_urls)

    assert not list(stage.checkpoints.glob("*.json"))  # everything is in the database
    assert (stage.checkpoints / DATABASE_NAME).is_file()
    show = _cli(stage.checkpoints, "show", STAGE_NAME)
    assert show["status"] == "completed" and show["recoveries"] == 2
    assert show["progress"]["processed_items"] == len(urls)
    stats = _cli(stage.checkpoints, "ledger", STAGE_NAME)["statistics"]
    assert stats["by_status"] == {
        "pending": 0,
        "done": len(ok_urls),
        "failed": len(error_urls),
        "skipped": 0,
    }
    assert set(stats["by_worker"]) <= {"run-1", "run-2", "run-3"}
    assert sum(sum(c.values()) for c in stats["by_worker"].values()) == len(urls)
    assert sum(stats["attempts"].values()) == len(urls)
    assert sum(stats["errors"].values()) == len(error_urls)
    assert all("500" in error for error in stats["errors"])


def test_orchestrator_runs_every_stage_on_sqlite(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    command = [
        sys.executable,
        "-m",
        "tools.orchestrator",
        "--env",
        "development",
        "--stage",
        "all",
        "--data-dir",
        str(data_dir),
        "--pages",
        "60",
        "--seed",
        "7",
        "--no-live",
        "--store",
        "sqlite",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoints = data_dir / "checkpoints"
    assert not list(checkpoints.glob("*.json"))
    listed = {s["stage"]: s for s in _cli(checkpoints, "list")["stages"]}
    assert sorted(listed) == ["stage1_discovery", "stage2_validation", STAGE_NAME]
    assert {s["status"] for s in listed.values()} == {"completed"}
    discovered = read_records(data_dir / "processed/stage01/discovery_output.jsonl")[0]
    show = _cli(checkpoints, "show", "stage1_discovery")
    # The crawl's done URLs are keys in the database, one per output line.
    assert show["resume_point"]["keys_done"] == len(discovered) > 0
    ledger = _cli(checkpoints, "ledger", "stage1_discovery")
    assert ledger["statistics"]["total"] == len(discovered)


def test_shared_enrichment_keeps_its_engine_record_in_sqlite(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """``--store sqlite --workers 2``: the PostgreSQL-shared stage's engine record goes to the
    SQLite database like every other stage's, so the orchestrator and the CLI find it there."""
    from tests.test_postgres_workers import free_port, write_validation

    pages, seed = 80, 3
    port = free_port()
    data_dir = tmp_path / "data"
    (data_dir / "processed/stage02").mkdir(parents=True)
    (data_dir / "demo_site.json").write_text(
        json.dumps({"port": port, "pages": pages, "seed": seed})
    )
    urls = build_site(pages, seed).expected_ok_urls(f"http://127.0.0.1:{port}")
    write_validation(data_dir / "processed/stage02/validation_output.jsonl", urls)
    command = [
        sys.executable, "-m", "tools.orchestrator", "--env", "development",
        "--stage", "enrichment", "--data-dir", str(data_dir), "--pages", str(pages),
        "--seed", str(seed), "--workers", "2", "--dsn", postgres_dsn, "--no-live",
        "--store", "sqlite",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoints = data_dir / "checkpoints"
    assert not list(checkpoints.glob("*.json"))
    listed = _cli(checkpoints, "list")["stages"]
    assert [(s["stage"], s["status"]) for s in listed] == [(STAGE_NAME, "completed")]
    assert listed[0]["progress"]["processed_items"] == len(urls)
    lines = (data_dir / "processed/stage03/enrichment_output.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["url"] for line in lines) == sorted(urls)
