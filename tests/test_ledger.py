"""The per-item ledger (seed 004): rows ride the checkpoint's saves, and the remaining-work and
statistics queries give the hand-computed answer on a fixed small data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common import AsyncCheckpointTracker, EnhancedCheckpoint
from common.ledger import Ledger, LedgerUnavailableError
from common.stores import JsonFileStore, SqliteStore
from tests.conftest import FakeClock
from tools.checkpoint_cli.app import main as cli_main

STAGE = "ledger_stage"
ITEMS = [f"item-{i:02d}" for i in range(10)]
T0 = 1_750_000_000.0


def _build(directory: Path) -> None:
    """Two workers over ten registered items.

    alpha: 00 done (1 try), 01 done (2), 02 failed (3, "HTTP 500"), 03 skipped (1).
    beta (after alpha paused): 04 done (1), 05 failed (1, "timeout"), 06 failed (2, "HTTP 500"),
    02 again: done (1). Items 07, 08 and 09 are never finished.
    """
    clock = FakeClock(T0)
    store = SqliteStore(directory)
    alpha = EnhancedCheckpoint(STAGE, store=store, worker_id="alpha", clock=clock)
    alpha.attach_output(directory.parent / "out.jsonl")
    alpha.start(STAGE, total_items=len(ITEMS))
    assert alpha.ledger is not None
    alpha.ledger.register(ITEMS)
    clock.advance(1)
    alpha.update(processed=1, successful=1, last_item="item-00")
    clock.advance(1)
    alpha.update(processed=1, successful=1, last_item="item-01", attempts=2)
    clock.advance(1)
    alpha.update(
        processed=1, failed=1, last_item="item-02", attempts=3, failed_record={"error": "HTTP 500"}
    )
    clock.advance(1)
    alpha.update(processed=1, skipped=1, last_item="item-03")
    alpha.pause()
    alpha.close()

    beta = EnhancedCheckpoint(STAGE, store=store, worker_id="beta", clock=clock)
    beta.attach_output(directory.parent / "out.jsonl")
    beta.start(STAGE)
    for key, kwargs in (
        ("item-04", {"successful": 1}),
        ("item-05", {"failed": 1, "failed_record": {"error": "timeout"}}),
        ("item-06", {"failed": 1, "attempts": 2, "failed_record": {"error": "HTTP 500"}}),
        ("item-02", {"successful": 1}),
    ):
        clock.advance(1)
        beta.update(processed=1, last_item=key, **kwargs)  # type: ignore[arg-type]
    beta.pause()
    beta.close()
    store.close()


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "checkpoints"
    _build(directory)
    return directory


def test_remaining_work_is_the_hand_computed_list(ledger_dir: Path) -> None:
    ledger = Ledger(SqliteStore(ledger_dir), STAGE)
    assert ledger.remaining() == ["item-07", "item-08", "item-09"]
    assert ledger.remaining(limit=2) == ["item-07", "item-08"]
    assert ledger.count_remaining() == 3
    assert ledger.remaining(include_failed=True) == [
        "item-05",
        "item-06",
        "item-07",
        "item-08",
        "item-09",
    ]
    assert ledger.count_remaining(include_failed=True) == 5


def test_statistics_are_the_hand_computed_figures(ledger_dir: Path) -> None:
    stats = Ledger(SqliteStore(ledger_dir), STAGE).statistics()
    assert stats.total == 10
    assert stats.by_status == {"pending": 3, "done": 4, "failed": 2, "skipped": 1}
    assert stats.by_worker == {
        "alpha": {"done": 2, "skipped": 1},
        "beta": {"done": 2, "failed": 2},
    }
    # 00, 03, 04, 05 took one try; 01 and 06 two; 02 three (alpha) + one (beta).
    assert stats.attempts == {1: 4, 2: 2, 4: 1}
    assert list(stats.errors.items()) == [("HTTP 500", 1), ("timeout", 1)]
    assert stats.remaining == 3
    assert stats.first_at == T0 + 1 and stats.last_at == T0 + 8


def test_a_row_keeps_its_history_across_workers(ledger_dir: Path) -> None:
    entry = Ledger(SqliteStore(ledger_dir), STAGE).entry("item-02")
    assert entry == {
        "key": "item-02",
        "worker_id": "beta",
        "status": "done",
        "attempts": 4,
        "error": None,
        "first_at": T0 + 3,
        "last_at": T0 + 8,
    }


def test_rows_are_visible_only_once_their_save_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cp")
    with EnhancedCheckpoint("s", store=store, worker_id="w", auto_save_interval=1000) as cp:
        cp.start("s")
        cp.update(processed=1, successful=1, key="https://a/")
        assert cp.ledger is not None
        assert cp.ledger.statistics().total == 0  # buffered, not committed
        cp.save()
        assert cp.ledger.statistics().by_status["done"] == 1
        assert not cp.update(processed=1, successful=1, key="https://a/")  # already done
        cp.save()
        assert cp.ledger.entry("https://a/")["attempts"] == 1  # type: ignore[index]
        cp.reset()
        assert cp.ledger.statistics().total == 0


def test_ledger_false_keeps_only_the_done_keys(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cp")
    with EnhancedCheckpoint("s", store=store, ledger=False) as cp:
        assert cp.ledger is None
        cp.start("s")
        cp.update(processed=1, successful=1, key="https://a/")
        cp.pause()
    assert Ledger(store, "s").statistics().total == 0
    with EnhancedCheckpoint("s", store=store) as again:
        assert again.is_key_done("https://a/")
    store.close()


def test_cli_ledger_prints_the_same_figures(
    ledger_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["--checkpoint-dir", str(ledger_dir), "ledger", STAGE, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["remaining"] == 3
    assert data["remaining_sample"] == ["item-07", "item-08", "item-09"]
    assert data["statistics"]["by_worker"]["beta"] == {"done": 2, "failed": 2}
    assert data["statistics"]["attempts"] == {"1": 4, "2": 2, "4": 1}
    assert cli_main(["--checkpoint-dir", str(ledger_dir), "ledger", STAGE, "--limit", "1"]) == 0
    text = capsys.readouterr().out
    assert "Remaining (pending): 3" in text
    assert "Remaining items (first 1):\n  item-07" in text
    assert "HTTP 500" in text and "alpha" in text


def test_json_store_has_no_ledger_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "cp"
    store = JsonFileStore(directory)
    with EnhancedCheckpoint("s", store=store) as cp:
        assert cp.ledger is None
        cp.start("s")
        cp.update(processed=1, successful=1, key="k")
        cp.pause()
    with pytest.raises(LedgerUnavailableError, match="sqlite"):
        Ledger(store, "s").statistics()
    assert cli_main(["--checkpoint-dir", str(directory), "ledger", "s"]) == 1
    assert "keep no per-item ledger" in capsys.readouterr().err


def test_bad_values_are_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cp")
    with pytest.raises(ValueError, match="worker_id"):
        Ledger(store, "s", worker_id=" ")
    ledger = Ledger(store, "s", worker_id="w")
    with pytest.raises(ValueError, match="'lost'"):
        ledger.record("k", "lost", at=T0)
    with pytest.raises(ValueError, match="attempts"):
        ledger.record("k", "done", at=T0, attempts=-1)
    with pytest.raises(ValueError, match="limit"):
        ledger.remaining(-1)
    assert not (tmp_path / "cp").exists()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_tracker_records_rows_for_its_worker(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    urls = [f"https://site/{i}" for i in range(6)]
    async with AsyncCheckpointTracker(directory, "t", store="sqlite", worker_id="w1") as tracker:
        tracker.start(total_items=len(urls))
        assert await tracker.register_items(urls) == 6
        for i, url in enumerate(urls[:4]):
            tracker.update(processed=1, successful=1, last_item=url, index=i)
        tracker.checkpoint.pause(wait=False)  # stopped before the end: resumable
    ledger = Ledger(SqliteStore(directory), "t")
    assert ledger.remaining() == urls[4:]
    assert ledger.statistics().by_worker == {"w1": {"done": 4}}
    async with AsyncCheckpointTracker(directory, "t", store="sqlite", worker_id="w2") as tracker:
        tracker.start(total_items=len(urls))
        assert await tracker.register_items(urls) == 0  # a resume registers nothing again
        for i, url in enumerate(urls):
            if not tracker.should_skip(i):
                tracker.update(processed=1, successful=1, last_item=url, index=i)
    assert ledger.remaining() == []
    assert ledger.statistics().by_worker == {"w1": {"done": 4}, "w2": {"done": 2}}
