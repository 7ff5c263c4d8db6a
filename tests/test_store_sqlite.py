"""The SQLite store: the store contract (shared with the JSON store), its files, bad input, the
writer lock, and SIGKILL inside a save (the last committed record, keys and ledger survive)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import CheckpointStatus, EnhancedCheckpoint
from common.errors import (
    CheckpointCorruptError,
    CheckpointLockedError,
    CheckpointSchemaError,
)
from common.io.faults import SQLITE_CRASH_POINTS
from common.state import CheckpointState, parse_checkpoint
from common.stores import CheckpointStore, SqliteStore, detect_store, open_store
from common.stores.sqlite import DATABASE_NAME

ROOT = Path(__file__).resolve().parent.parent


def _record(stage: str, processed: int = 0) -> dict[str, Any]:
    record = CheckpointState(stage=stage, created_at="2026-01-01T00:00:00").to_dict()
    record["progress"]["processed_items"] = processed
    return record


def _parse(stage: str) -> Any:
    return lambda data, path: parse_checkpoint(data, path=path, stage=stage)


@pytest.fixture(params=["json", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CheckpointStore]:
    opened = open_store(request.param, tmp_path / "checkpoints")
    yield opened
    opened.close()


# The contract every store keeps -----------------------------------------------------------------


def test_save_then_load_returns_the_newest_record(store: CheckpointStore) -> None:
    assert store.load("s1", _parse("s1")) is None
    store.save("s1", _record("s1", 1))
    store.save("s1", _record("s1", 2))
    loaded = store.load("s1", _parse("s1"))
    assert loaded is not None and not loaded.restored_from_backup
    state, _ = loaded.value
    assert state.progress.processed_items == 2
    assert store.list_stages() == ["s1"]
    modified = store.modified_time("s1")
    assert modified is not None and abs(modified - time.time()) < 60


def test_delete_forgets_the_stage_only(store: CheckpointStore) -> None:
    store.save("a", _record("a"))
    store.save("a.b", _record("a.b"))
    assert store.delete("a") is True
    assert store.list_stages() == ["a.b"]
    assert store.load("a", _parse("a")) is None
    assert store.delete("a") is False


def test_history_snapshots_round_trip(store: CheckpointStore) -> None:
    first = store.save_history("s", _record("s", 1), "start", 1_750_000_000.25)
    second = store.save_history("s", _record("s", 5), "pause", 1_750_000_060.5)
    entries = store.list_history("s")
    assert [e.snapshot_id for e in entries] == [first, second]
    assert [e.reason for e in entries] == ["start", "pause"]
    assert store.load_history("s", second)["progress"]["processed_items"] == 5
    store.delete_history("s", first)
    assert [e.snapshot_id for e in store.list_history("s")] == [second]
    with pytest.raises(CheckpointCorruptError, match="no snapshot"):
        store.load_history("s", first)


def test_engine_keys_survive_a_reopen(store: CheckpointStore, tmp_path: Path) -> None:
    with EnhancedCheckpoint("keys", store=store) as cp:
        cp.start("keys")
        for i in range(500):
            assert cp.update(processed=1, successful=1, key=f"https://site/{i}")
        assert not cp.update(processed=1, successful=1, key="https://site/7")
        cp.complete()
    store.close()
    with EnhancedCheckpoint("keys", store=store) as again:
        assert again.done_keys_count == 500
        assert again.is_key_done("https://site/499")
        assert not again.is_key_done("https://site/500")
        assert again.state.keys_done == 500


def test_restoring_an_older_record_cuts_the_keys_it_does_not_count(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    with EnhancedCheckpoint("s", store=SqliteStore(directory)) as cp:
        cp.start("s")
        for i in range(10):
            cp.update(processed=1, successful=1, key=f"k{i}")
        cp.save()
        store = cp.store
        older = store.save_history("s", cp.state.to_dict(), "ten", time.time())
        for i in range(10, 25):
            cp.update(processed=1, successful=1, key=f"k{i}")
        cp.pause()
    store.save("s", store.load_history("s", older))  # what `checkpoint-manager restore` does
    with EnhancedCheckpoint("s", store=store) as again:
        again.acquire()
        assert again.done_keys_count == 10
        assert again.is_key_done("k9") and not again.is_key_done("k10")
        assert again.start("s")
        assert again.update(processed=1, successful=1, key="k10")  # redone, not lost
    store.close()


# SQLite specifics ----------------------------------------------------------------------------------


def test_database_and_its_wal_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    sq = SqliteStore(directory)
    sq.save("s", _record("s"))
    try:
        names = {p.name for p in directory.iterdir()}
        assert {DATABASE_NAME, f"{DATABASE_NAME}-wal"} <= names  # WAL while a connection is open
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        conn = sqlite3.connect(directory / DATABASE_NAME)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        sq.close()
    assert detect_store(directory) == "sqlite"
    assert detect_store(tmp_path / "elsewhere") == "json"


def test_reading_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    sq = SqliteStore(tmp_path / "none")
    assert sq.list_stages() == []
    assert sq.load("s", _parse("s")) is None
    assert sq.list_history("s") == []
    assert sq.modified_time("s") is None
    assert sq.ledger_backend().ledger_statistics("s").total == 0
    assert not (tmp_path / "none").exists()


def test_garbage_database_is_refused_naming_it_and_left_untouched(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    directory.mkdir()
    db = directory / DATABASE_NAME
    garbage = b"this is not a database\n" * 100
    db.write_bytes(garbage)
    with pytest.raises(CheckpointCorruptError, match=str(db)):
        EnhancedCheckpoint(directory / "s.json", store="sqlite")
    assert db.read_bytes() == garbage
    assert sorted(p.name for p in directory.iterdir()) == [DATABASE_NAME]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    SqliteStore(directory).save("s", _record("s"))
    conn = sqlite3.connect(directory / DATABASE_NAME)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    before = (directory / DATABASE_NAME).read_bytes()
    with pytest.raises(CheckpointSchemaError, match="newer version"):
        SqliteStore(directory).list_stages()
    assert (directory / DATABASE_NAME).read_bytes() == before


def test_damaged_record_is_restored_from_the_backup_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cp"
    sq = SqliteStore(directory)
    sq.save("s", _record("s", 1))
    sq.save("s", _record("s", 2))
    sq.close()
    conn = sqlite3.connect(directory / DATABASE_NAME)
    conn.execute('UPDATE records SET body = \'{"stage": "s", "status": 7}\' WHERE stage = \'s\'')
    conn.commit()
    conn.close()
    sq = SqliteStore(directory)
    loaded = sq.load("s", _parse("s"))
    assert loaded is not None and loaded.restored_from_backup
    assert loaded.value[0].progress.processed_items == 1
    assert "restored" in caplog.text
    sq.save("s", _record("s", 3))  # the damaged record is set aside, the good backup stays
    conn = sqlite3.connect(directory / DATABASE_NAME)
    body, previous = conn.execute("SELECT body, previous FROM records").fetchone()
    aside = conn.execute("SELECT body FROM set_aside").fetchall()
    conn.close()
    sq.close()
    assert json.loads(body)["progress"]["processed_items"] == 3
    assert json.loads(previous)["progress"]["processed_items"] == 1
    assert aside == [('{"stage": "s", "status": 7}',)]


def test_both_records_damaged_is_an_error_naming_stage_and_database(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    sq = SqliteStore(directory)
    sq.save("s", _record("s", 1))
    sq.save("s", _record("s", 2))
    sq.close()
    conn = sqlite3.connect(directory / DATABASE_NAME)
    conn.execute("UPDATE records SET body = 'garbage', previous = '[]'")
    conn.commit()
    conn.close()
    with pytest.raises(CheckpointCorruptError) as caught:
        EnhancedCheckpoint(directory / "s.json", store="sqlite")
    message = str(caught.value)
    assert "'s'" in message and DATABASE_NAME in message and "Nothing was changed" in message
    conn = sqlite3.connect(directory / DATABASE_NAME)
    assert conn.execute("SELECT body, previous FROM records").fetchone() == ("garbage", "[]")
    conn.close()


def test_unknown_store_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown checkpoint store 'mysql'.*sqlite"):
        open_store("mysql", "x")


# Processes -------------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from common import EnhancedCheckpoint
    cp = EnhancedCheckpoint(sys.argv[1] + "/held.json", store="sqlite")
    cp.start("held", total_items=3)
    cp.update(processed=1, successful=1, key="a")
    cp.save(force=True)
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_second_writer_is_refused_and_a_killed_writer_is_recovered(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        reader = EnhancedCheckpoint(directory / "held.json", store="sqlite")
        try:
            assert reader.is_locked_elsewhere
            assert reader.status is CheckpointStatus.RUNNING  # live, so not a crash
            with pytest.raises(CheckpointLockedError, match=f"process {child.pid}"):
                reader.start("held")
        finally:
            reader.close()
    finally:
        child.kill()
        child.wait(timeout=30)
    with EnhancedCheckpoint(directory / "held.json", store="sqlite") as resumed:
        assert resumed.status is CheckpointStatus.RECOVERING
        assert resumed.is_key_done("a")
        assert resumed.start("held")
        assert resumed.state.recoveries == 1


SAVER = textwrap.dedent(
    """
    import sys
    from common import EnhancedCheckpoint
    directory, output, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cp = EnhancedCheckpoint(directory + "/killed.json", store="sqlite", worker_id="w",
                            auto_save_interval=1, min_save_interval=0)
    cp.attach_output(output)
    cp.start("killed", total_items=n)
    print("ready", flush=True)
    for i in range(n):
        url = f"https://site/{i}"
        if cp.is_key_done(url):
            continue
        cp.update(processed=1, successful=1, key=url, record={"url": url})
        if i % 100 == 99:
            cp.save()  # besides the auto-saves: a crash point is reached however fast this runs
    cp.complete()
    print("done", flush=True)
    """
)


def _committed(directory: Path) -> tuple[int, int, int]:
    """(processed in the record, keys in the table, ledger rows) read with plain sqlite3."""
    conn = sqlite3.connect(directory / DATABASE_NAME)
    try:
        body = conn.execute("SELECT body FROM records WHERE stage = 'killed'").fetchone()
        keys = conn.execute("SELECT count(*) FROM done_keys").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    finally:
        conn.close()
    processed = json.loads(body[0])["progress"]["processed_items"] if body else 0
    return processed, keys, rows


def _wait_for(condition: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _check_consistent(directory: Path, output: Path) -> int:
    processed, keys, rows = _committed(directory)
    assert processed == keys == rows, (processed, keys, rows)
    with EnhancedCheckpoint(directory / "killed.json", store="sqlite") as cp:
        cp.attach_output(output)
        cp.acquire()  # cuts the output back to its committed length
        assert cp.state.keys_done == processed
        assert all(cp.is_key_done(f"https://site/{i}") for i in range(processed))
        assert not cp.is_key_done(f"https://site/{processed}")
    lines = output.read_text().splitlines()
    assert [json.loads(line)["url"] for line in lines] == [
        f"https://site/{i}" for i in range(processed)
    ]
    return processed


@pytest.mark.slow
def test_sigkill_inside_a_save_keeps_the_last_committed_state(tmp_path: Path) -> None:
    directory, output, n = tmp_path / "cp", tmp_path / "out.jsonl", 20_000
    seen: list[int] = []
    # Killed inside the transaction (rows inserted, COMMIT not reached), right after a COMMIT,
    # and at moments chosen by the clock while saves run back to back.
    for point, skip in (*zip(SQLITE_CRASH_POINTS, (5, 12), strict=True), (None, 0)):
        env = {**os.environ}
        if point:
            env.update(CHECKPOINT_CRASH_AT=point, CHECKPOINT_CRASH_SKIP=str(skip))
        child = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(directory), str(output), str(n)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        if point is None:
            floor = max(seen) + 200
            _wait_for(lambda floor=floor: _committed(directory)[0] >= floor, 60, "progress")
            child.kill()
        assert child.wait(timeout=60) == -9
        seen.append(_check_consistent(directory, output))
    assert seen == sorted(seen) and seen[0] > 0
    finisher = subprocess.run(
        [sys.executable, "-c", SAVER, str(directory), str(output), str(n)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert finisher.returncode == 0, finisher.stderr
    assert _check_consistent(directory, output) == n
    with EnhancedCheckpoint(directory / "killed.json", store="sqlite") as cp:
        assert cp.status is CheckpointStatus.COMPLETED
        assert cp.ledger is not None and cp.ledger.statistics().by_status["done"] == n


# Scrapy settings ---------------------------------------------------------------------------------


def test_scrapy_checkpoint_store_setting_selects_sqlite(tmp_path: Path) -> None:
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from common.ledger import Ledger
    from common.scrapy.pipeline import CheckpointPipeline

    class Unit(Spider):
        name = "unit"

    directory = tmp_path / "checkpoints"
    settings = {
        "CHECKPOINT_ENABLED": True,
        "CHECKPOINT_DIR": str(directory),
        "CHECKPOINT_STAGE_NAME": "crawl",
        "CHECKPOINT_OUTPUT_FILE": str(tmp_path / "out.jsonl"),
        "CHECKPOINT_STORE": "sqlite",
        "CHECKPOINT_WORKER_ID": "crawler-1",
    }
    pipeline = CheckpointPipeline.from_crawler(get_crawler(Unit, settings))
    pipeline.runtime.open(Unit())
    try:
        pipeline.process_item({"url": "http://site.test/a", "ok": True})
        pipeline.process_item({"url": "http://site.test/a", "ok": True})  # a redone request
        pipeline.process_item({"url": "http://site.test/b", "ok": False, "error": "boom"})
        pipeline.runtime.settle("finished")
    finally:
        pipeline.runtime.close()
    assert not list(directory.glob("*.json"))
    store = SqliteStore(directory)
    with EnhancedCheckpoint("crawl", store=store) as cp:
        assert cp.status is CheckpointStatus.COMPLETED
        assert cp.done_keys_count == 2 and cp.is_key_done("http://site.test/b")
    stats = Ledger(store, "crawl").statistics()
    assert stats.by_worker == {"crawler-1": {"done": 1, "failed": 1}}
    assert stats.errors == {"boom": 1}
    store.close()


def test_scrapy_unknown_store_is_a_refused_start_naming_it(tmp_path: Path) -> None:
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from common.errors import CheckpointError
    from common.scrapy.runtime import CrawlCheckpoint

    class Unit(Spider):
        name = "unit"

    directory = tmp_path / "checkpoints"
    crawler = get_crawler(
        Unit,
        {"CHECKPOINT_ENABLED": True, "CHECKPOINT_DIR": str(directory), "CHECKPOINT_STORE": "mongo"},
    )
    with pytest.raises(CheckpointError, match="unknown checkpoint store 'mongo'"):
        CrawlCheckpoint.for_crawler(crawler).open(Unit())
    assert not directory.exists()
