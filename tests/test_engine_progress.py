"""Progress maths: pure formulas, and through EnhancedCheckpoint with an injected clock."""

from __future__ import annotations

import json
import logging

import pytest

from common import EnhancedCheckpoint, ProgressSnapshot
from common.progress import (
    eta_seconds,
    format_duration,
    format_progress_line,
    percent_complete,
    success_rate,
    throughput,
)
from tests.conftest import FakeClock, MakeCheckpoint
from tests.test_engine_state import iso_z

SEED_LINE = (
    "Progress: 45.5% (5000/11000) | Success: 98.2% | Throughput: 42.3 items/sec | ETA: 2.4 min"
)


@pytest.mark.parametrize(
    ("processed", "total", "expected"),
    [(5000, 11000, 45.45454545), (0, 10, 0.0), (10, 10, 100.0), (3, 0, 0.0), (12, 10, 100.0)],
)
def test_percent_complete(processed: int, total: int, expected: float) -> None:
    assert percent_complete(processed, total) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("successful", "failed", "expected"),
    [(4910, 90, 98.2), (0, 0, 100.0), (0, 5, 0.0), (3, 1, 75.0), (7720, 280, 96.5)],
)
def test_success_rate(successful: int, failed: int, expected: float) -> None:
    assert success_rate(successful, failed) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("processed", "seconds", "expected"),
    [(100, 4.0, 25.0), (5, 0.0, 0.0), (0, 10.0, 0.0), (1, 0.5, 2.0), (5, -1.0, 0.0)],
)
def test_throughput(processed: int, seconds: float, expected: float) -> None:
    assert throughput(processed, seconds) == pytest.approx(expected)


def test_eta_seconds() -> None:
    assert eta_seconds(5000, 11000, 42.3) == pytest.approx(6000 / 42.3)
    assert eta_seconds(50, 100, 5.0) == pytest.approx(10.0)
    assert eta_seconds(120, 100, 5.0) == 0.0  # past the total: nothing left
    assert eta_seconds(5, 0, 5.0) is None  # unknown total
    assert eta_seconds(5, 10, 0.0) is None  # no rate yet


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0, "0.0 sec"),
        (45, "45.0 sec"),
        (59.94, "59.9 sec"),
        (60, "1.0 min"),
        (144, "2.4 min"),
        (6000 / 42.3, "2.4 min"),
        (3599, "60.0 min"),
        (3600, "1.0 hours"),
        (5400, "1.5 hours"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_seed_progress_line_exactly() -> None:
    snapshot = ProgressSnapshot(
        total=11000,
        processed=5000,
        successful=4910,
        failed=90,
        skipped=0,
        active_seconds=5000 / 42.3,
    )
    assert snapshot.percent == pytest.approx(45.4545, abs=1e-3)
    assert snapshot.success_rate == pytest.approx(98.2)
    assert snapshot.throughput == pytest.approx(42.3)
    assert snapshot.eta_seconds == pytest.approx(141.844, abs=1e-3)
    assert format_progress_line(snapshot) == SEED_LINE


def test_progress_line_with_nothing_done() -> None:
    snapshot = ProgressSnapshot(0, 0, 0, 0, 0, 0.0)
    assert format_progress_line(snapshot) == (
        "Progress: 0.0% (0/0) | Success: unknown | Throughput: 0.0 items/sec | ETA: unknown"
    )


def test_progress_line_with_only_skipped_items_has_no_success_rate_yet() -> None:
    snapshot = ProgressSnapshot(10, 3, 0, 0, 3, 1.0)
    assert "| Success: unknown |" in format_progress_line(snapshot)
    assert "| Success: 0.0% |" in format_progress_line(ProgressSnapshot(10, 3, 0, 3, 0, 1.0))


# Through EnhancedCheckpoint -----------------------------------------------------------------------


def _work(cp: EnhancedCheckpoint, indices: range, *, failed_every: int = 0) -> None:
    for i in indices:
        failed = 1 if failed_every and i % failed_every == 0 else 0
        cp.update(processed=1, successful=1 - failed, failed=failed, index=i)


def test_figures_follow_the_injected_clock(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("clocked", clock=fake_clock, auto_save_interval=1000)
    cp.start(total_items=100)
    _work(cp, range(50), failed_every=10)  # 5 of 50 failed
    fake_clock.advance(10)
    snap = cp.progress_snapshot()
    assert snap.active_seconds == pytest.approx(10.0)
    assert snap.throughput == pytest.approx(5.0)
    assert snap.success_rate == pytest.approx(90.0)
    assert snap.eta_seconds == pytest.approx(10.0)
    assert cp.progress_line() == (
        "Progress: 50.0% (50/100) | Success: 90.0% | Throughput: 5.0 items/sec | ETA: 10.0 sec"
    )
    fake_clock.advance(10)  # time passes, nothing done: the rate drops
    assert cp.progress_snapshot().throughput == pytest.approx(2.5)


def test_paused_time_is_not_counted(make_checkpoint: MakeCheckpoint, fake_clock: FakeClock) -> None:
    cp = make_checkpoint("paused", clock=fake_clock, auto_save_interval=1000)
    cp.start(total_items=400)
    _work(cp, range(100))
    fake_clock.advance(20)
    cp.pause()
    assert json.loads(cp.path.read_text())["progress"]["active_seconds"] == pytest.approx(20.0)
    fake_clock.advance(3600)  # an hour paused
    assert cp.progress_snapshot().throughput == pytest.approx(5.0)
    cp.start()
    _work(cp, range(100, 200))
    fake_clock.advance(20)
    # 200 items over 40 active seconds, not over 3640 s of wall time.
    assert cp.progress_snapshot().throughput == pytest.approx(5.0)
    assert cp.progress_snapshot().eta_seconds == pytest.approx(40.0)


def test_active_time_sums_over_runs_of_different_objects(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    first = make_checkpoint("runs", clock=fake_clock, auto_save_interval=1000)
    first.start(total_items=300)
    _work(first, range(100))
    fake_clock.advance(50)
    first.pause()
    first.close()
    fake_clock.advance(86_400)  # a day later

    second = make_checkpoint("runs", clock=fake_clock, auto_save_interval=1000)
    assert second.progress_snapshot().throughput == pytest.approx(2.0)
    second.start()
    _work(second, range(100, 200))
    fake_clock.advance(25)
    snap = second.progress_snapshot()
    assert snap.active_seconds == pytest.approx(75.0)
    assert snap.throughput == pytest.approx(200 / 75)
    second.complete()
    data = json.loads(second.path.read_text())
    assert data["progress"]["active_seconds"] == pytest.approx(75.0)
    assert data["progress"]["estimated_completion_time"] == 0.0


def test_saved_eta_and_times(make_checkpoint: MakeCheckpoint, fake_clock: FakeClock) -> None:
    cp = make_checkpoint("eta", clock=fake_clock, auto_save_interval=1000)
    started = fake_clock()
    cp.start(total_items=1000)
    fake_clock.advance(30)
    _work(cp, range(300))
    cp.save()
    progress = json.loads(cp.path.read_text())["progress"]
    assert progress["start_time"] == iso_z(started)
    assert progress["last_update_time"] == iso_z(started + 30)
    # 300 in 30 s: 10/s, 700 left.
    assert progress["estimated_completion_time"] == pytest.approx(70.0)


def test_progress_is_logged_every_100_items(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cp = make_checkpoint("logged", clock=fake_clock, auto_save_interval=1000)
    cp.start(total_items=11000)
    caplog.set_level(logging.INFO, logger="common.checkpoint")
    cp.update(processed=4900, successful=4810, failed=90)
    fake_clock.advance(5000 / 42.3)
    caplog.clear()
    for i in range(99):
        cp.update(processed=1, successful=1, index=i)
    assert not [r for r in caplog.records if r.getMessage().startswith("Progress:")]
    cp.update(processed=1, successful=1, index=99)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress:")]
    assert lines == [SEED_LINE]


def test_completed_stage_reports_full_progress(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("full", clock=fake_clock, auto_save_interval=1000)
    cp.start(total_items=4)
    _work(cp, range(4))
    fake_clock.advance(2)
    cp.complete()
    fake_clock.advance(1000)  # completed: time no longer counts
    assert cp.progress_line() == (
        "Progress: 100.0% (4/4) | Success: 100.0% | Throughput: 2.0 items/sec | ETA: 0.0 sec"
    )


def test_fake_clock_fixture_moves_only_when_told(fake_clock: FakeClock) -> None:
    before = fake_clock()
    assert fake_clock() == before
    assert fake_clock.advance(2.5) == before + 2.5


def test_progress_log_every_can_change_while_running(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cp = make_checkpoint("relogged", clock=fake_clock, auto_save_interval=1000)
    cp.start(total_items=100)
    caplog.set_level(logging.INFO, logger="common.checkpoint")

    def logged_after(indices: range) -> list[int]:
        caplog.clear()
        at = []
        for i in indices:
            cp.update(processed=1, successful=1, index=i)
            if any(r.getMessage().startswith("Progress:") for r in caplog.records):
                at.append(i + 1)
                caplog.clear()
        return at

    cp.progress_log_every = 0
    assert logged_after(range(0, 30)) == []
    cp.progress_log_every = 10  # counted from here: 30 processed
    assert cp.progress_log_every == 10
    assert logged_after(range(30, 55)) == [40, 50]
    cp.progress_log_every = 0
    assert logged_after(range(55, 70)) == []
