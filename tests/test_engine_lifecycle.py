"""Input and config guards, staleness, errors, auto-save, failing saves, history, set_position."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from common import (
    CheckpointSaveError,
    CheckpointStatus,
    ConfigChangedError,
    EnhancedCheckpoint,
    InputChangedError,
    InvalidTransitionError,
    JsonFileStore,
)
from common.saver import SaverState
from common.state import utc_iso
from tests._waiting import wait_for
from tests.conftest import FakeClock, MakeCheckpoint
from tests.test_engine_saver import processed_on_disk


def _processed_on_disk(cp: EnhancedCheckpoint) -> int:
    value: int = json.loads(cp.path.read_text())["progress"]["processed_items"]
    return value


def _done(cp: EnhancedCheckpoint, indices: range) -> None:
    for i in indices:
        cp.update(processed=1, successful=1, index=i)


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_text("".join(f'{{"url": "https://site/{i}"}}\n' for i in range(20)))
    return path


# Input file -------------------------------------------------------------------------------------


def test_validate_input_file_reasons(make_checkpoint: MakeCheckpoint, input_file: Path) -> None:
    cp = make_checkpoint("guarded")
    assert cp.validate_input_file(input_file) == (True, "no input hash recorded")
    cp.start("guarded", total_items=20, input_file=input_file)
    assert cp.validate_input_file(input_file) == (True, "input file unchanged")

    original = input_file.read_bytes()
    input_file.write_bytes(original.replace(b"site/1", b"site/X", 1))  # same size
    assert input_file.stat().st_size == len(original)
    ok, reason = cp.validate_input_file(input_file)
    assert ok is False
    assert "changed" in reason and "content hash differs" in reason and str(input_file) in reason

    extra = b'{"url": "https://site/new"}\n'
    input_file.write_bytes(original + extra)
    ok, reason = cp.validate_input_file(input_file)
    assert ok is False
    assert f"{len(original) + len(extra)} bytes, was {len(original)}" in reason

    input_file.unlink()
    ok, reason = cp.validate_input_file(input_file)
    assert ok is False
    assert "does not exist" in reason and str(input_file) in reason

    input_file.write_bytes(original)
    assert cp.validate_input_file(input_file) == (True, "input file unchanged")


def _paused_on(make_checkpoint: MakeCheckpoint, input_file: Path, **start: Any) -> None:
    cp = make_checkpoint("resume", auto_save_interval=1000)
    cp.start("resume", total_items=20, input_file=input_file, **start)
    _done(cp, range(5))
    cp.pause()
    cp.close()


def test_resume_over_changed_input_is_refused_unless_forced(
    make_checkpoint: MakeCheckpoint, input_file: Path
) -> None:
    _paused_on(make_checkpoint, input_file)
    input_file.write_bytes(input_file.read_bytes() + b'{"url": "extra"}\n')
    cp = make_checkpoint("resume")
    with pytest.raises(InputChangedError) as info:
        cp.start("resume", total_items=21, input_file=input_file)
    assert "'resume'" in str(info.value) and "input file has changed" in str(info.value)
    assert cp.status is CheckpointStatus.PAUSED
    assert json.loads(cp.path.read_text())["status"] == "paused"

    assert cp.start("resume", total_items=21, input_file=input_file, force=True) is True
    assert cp.should_skip(4) and not cp.should_skip(5)
    assert cp.validate_input_file(input_file) == (True, "input file unchanged")


def test_resume_over_changed_config_is_refused_unless_forced(
    make_checkpoint: MakeCheckpoint, input_file: Path
) -> None:
    _paused_on(make_checkpoint, input_file, config={"depth": 3, "domains": ["a", "b"]})
    cp = make_checkpoint("resume")
    assert cp.validate_config({"domains": ["a", "b"], "depth": 3}) == (
        True,
        "configuration unchanged",
    )
    assert cp.validate_config({"depth": 4, "domains": ["a", "b"]}) == (
        False,
        "configuration has changed since checkpoint",
    )
    with pytest.raises(ConfigChangedError, match=r"'resume'.*configuration has changed"):
        cp.start(input_file=input_file, config={"depth": 4, "domains": ["a", "b"]})
    # Key order is not a change.
    assert cp.start(input_file=input_file, config={"domains": ["a", "b"], "depth": 3}) is True
    cp.pause()
    assert cp.start(input_file=input_file, config={"depth": 4}, force=True) is True
    assert cp.validate_config({"depth": 4}) == (True, "configuration unchanged")


def test_completed_stage_on_same_input_is_not_redone(
    make_checkpoint: MakeCheckpoint, input_file: Path
) -> None:
    cp = make_checkpoint("done_once")
    cp.start(total_items=3, input_file=input_file)
    _done(cp, range(3))
    cp.complete()
    cp.close()
    saved = cp.path.read_bytes()
    again = make_checkpoint("done_once")
    assert again.start(total_items=3, input_file=input_file) is False
    assert again.status is CheckpointStatus.COMPLETED
    assert again.should_skip(2)
    assert cp.path.read_bytes() == saved


def test_completed_stage_with_changed_input_restarts_from_scratch(
    make_checkpoint: MakeCheckpoint, input_file: Path
) -> None:
    cp = make_checkpoint("rerun")
    cp.start(total_items=3, input_file=input_file)
    _done(cp, range(3))
    cp.complete()
    cp.close()
    input_file.write_text('{"url": "https://other"}\n')
    again = make_checkpoint("rerun")
    assert again.start(total_items=1, input_file=input_file) is True
    assert again.status is CheckpointStatus.RUNNING
    assert again.state.progress.processed_items == 0
    assert not again.should_skip(0)
    assert again.validate_input_file(input_file)[0] is True
    reasons = [e.reason for e in again.store.list_history("rerun")]
    assert any(r.startswith("before-input") for r in reasons)


def test_fresh_restarts_a_completed_stage(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("fresh")
    cp.start(total_items=2)
    _done(cp, range(2))
    cp.complete()
    assert cp.start(total_items=2, fresh=True) is True
    assert cp.status is CheckpointStatus.RUNNING
    assert cp.state.progress.processed_items == 0
    assert not cp.should_skip(0)


def test_is_stale_uses_the_injected_clock(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("stale", clock=fake_clock)
    assert cp.is_stale(max_age_hours=24) is False  # never saved: nothing to be stale
    cp.start(total_items=10)
    fake_clock.advance(3600)
    cp.update(processed=1, successful=1, index=0)
    fake_clock.advance(24 * 3600)
    assert cp.is_stale(max_age_hours=24) is False
    fake_clock.advance(1)
    assert cp.is_stale(max_age_hours=24) is True
    assert cp.is_stale(max_age_hours=25) is False
    cp.pause()
    cp.close()
    again = make_checkpoint("stale", clock=fake_clock)
    assert again.is_stale(max_age_hours=24) is True


# Errors --------------------------------------------------------------------------------------------


def test_fail_records_the_error(make_checkpoint: MakeCheckpoint, fake_clock: FakeClock) -> None:
    cp = make_checkpoint("broken_stage", clock=fake_clock)
    cp.start(total_items=10)
    fake_clock.advance(90)
    cp.fail(ValueError("disk on fire"))
    assert cp.status is CheckpointStatus.FAILED
    state = cp.state
    assert state.error_message == "ValueError: disk on fire"
    assert state.error_count == 1
    assert state.last_error_time == utc_iso(fake_clock())
    assert [(e.time, e.message) for e in state.recent_errors] == [
        (utc_iso(fake_clock()), "ValueError: disk on fire")
    ]
    data = json.loads(cp.path.read_text())  # fail() saved
    assert data["status"] == "failed"
    assert data["error_message"] == "ValueError: disk on fire"
    assert data["error_count"] == 1
    assert data["last_error_time"] == utc_iso(fake_clock())
    assert data["recent_errors"] == [
        {"time": utc_iso(fake_clock()), "message": "ValueError: disk on fire"}
    ]


def test_record_error_keeps_status_and_caps_recent_errors(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("noisy", clock=fake_clock)
    cp.start(total_items=10)
    for n in range(25):
        fake_clock.advance(1)
        cp.record_error(f"timeout #{n}")
    assert cp.status is CheckpointStatus.RUNNING
    assert cp.state.error_count == 25
    assert cp.state.error_message == "timeout #24"
    assert [e.message for e in cp.state.recent_errors] == [f"timeout #{n}" for n in range(5, 25)]
    cp.save()
    data = json.loads(cp.path.read_text())
    assert data["status"] == "running" and data["error_count"] == 25
    assert len(data["recent_errors"]) == 20
    cp.fail(RuntimeError("fatal"))
    assert cp.state.error_count == 26
    assert [e.message for e in cp.state.recent_errors][-1] == "RuntimeError: fatal"
    assert len(cp.state.recent_errors) == 20
    assert cp.start() is True
    assert cp.state.error_message is None  # a new run clears the current error
    assert cp.state.error_count == 26


# Auto-save ---------------------------------------------------------------------------------------


def test_auto_save_every_n_updates(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint(
        "every10", auto_save_interval=10, save_every_seconds=1e9, min_save_interval=0
    )
    cp.start(total_items=100)
    cp.flush()
    _done(cp, range(9))
    cp.flush()
    assert _processed_on_disk(cp) == 0
    _done(cp, range(9, 10))
    cp.flush()
    assert _processed_on_disk(cp) == 10
    _done(cp, range(10, 20))
    cp.flush()
    assert _processed_on_disk(cp) == 20


def test_auto_save_is_rate_limited_by_min_save_interval(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    # An hour's minimum interval: the saver's timer cannot fire during the test.
    cp = make_checkpoint(
        "limited",
        clock=fake_clock,
        auto_save_interval=10,
        save_every_seconds=7200,
        min_save_interval=3600,
    )
    cp.start(total_items=100)
    cp.flush()
    _done(cp, range(25))  # due by count, but no time has passed since the last save
    assert cp.saver_state is SaverState.DEFERRED
    assert _processed_on_disk(cp) == 0  # nothing was submitted: no save can be in flight
    fake_clock.advance(3600)
    _done(cp, range(25, 26))  # the owner is here when the interval has passed: it saves
    cp.flush()
    assert _processed_on_disk(cp) == 26
    assert cp.saver_state is SaverState.IDLE


def test_auto_save_after_save_every_seconds(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("timed", clock=fake_clock, auto_save_interval=1000, save_every_seconds=5)
    cp.start(total_items=100)
    cp.flush()
    fake_clock.advance(4.9)
    _done(cp, range(1))
    cp.flush()
    assert _processed_on_disk(cp) == 0
    fake_clock.advance(0.1)
    _done(cp, range(1, 2))
    cp.flush()
    assert _processed_on_disk(cp) == 2


class _GatedStore(JsonFileStore):
    """The first save waits for ``release``: a slow disk, deterministically."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.release = threading.Event()
        self.saves = 0

    def save(self, stage: str, record: dict[str, Any]) -> None:
        self.saves += 1
        if self.saves == 1:
            assert self.release.wait(10)
        super().save(stage, record)


def test_auto_save_due_during_a_slow_save_still_happens(checkpoint_dir: Path) -> None:
    store = _GatedStore(checkpoint_dir)
    cp = EnhancedCheckpoint(
        "slow_disk", store=store, auto_save_interval=10, save_every_seconds=1e9, min_save_interval=0
    )
    try:
        cp.start(total_items=100)  # this save is slow
        _done(cp, range(10))  # the 10th update is due while it is in flight
        assert cp.saver_state is SaverState.SAVING_DUE
        store.release.set()
        # No flush, tick or update: the saver takes the save that fell due by itself.
        wait_for(lambda: processed_on_disk(cp.path) == 10, 60, "the coalesced save on disk")
        assert store.saves == 2
    finally:
        store.release.set()
        cp.close()


def _enospc(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failing_save_surfaces_and_keeps_the_previous_file(
    make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = make_checkpoint(
        "full_disk", auto_save_interval=1, save_every_seconds=1e9, min_save_interval=0
    )
    cp.start(total_items=100)
    _done(cp, range(3))
    cp.save()
    good = cp.path.read_bytes()
    monkeypatch.setattr("common.io.atomic.write_new_file", _enospc)
    _done(cp, range(3, 4))  # submits a save that fails on the saver thread
    with pytest.raises(CheckpointSaveError) as info:
        cp.flush()
    assert str(cp.path) in str(info.value)
    assert os.strerror(errno.ENOSPC) in str(info.value)
    assert info.value.stage == "full_disk"
    assert cp.path.read_bytes() == good
    assert not list(cp.path.parent.glob(".full_disk.tmp*"))
    monkeypatch.undo()  # even with space again, the checkpoint stays broken
    with pytest.raises(CheckpointSaveError):
        cp.update(processed=1, successful=1, index=10)
    with pytest.raises(CheckpointSaveError):
        cp.save(force=True)
    assert cp.path.read_bytes() == good


def test_failing_store_subclass_is_wrapped(checkpoint_dir: Path) -> None:
    class FullStore(JsonFileStore):
        fail = False

        def save(self, stage: str, record: dict[str, Any]) -> None:
            if self.fail:
                _enospc()
            super().save(stage, record)

    store = FullStore(checkpoint_dir)
    cp = EnhancedCheckpoint("sub", store=store, auto_save_interval=1000)
    try:
        cp.start(total_items=5)
        cp.flush()
        good = (checkpoint_dir / "sub.json").read_bytes()
        store.fail = True
        _done(cp, range(2))
        with pytest.raises(CheckpointSaveError, match=r"sub\.json"):
            cp.save()
        assert (checkpoint_dir / "sub.json").read_bytes() == good
    finally:
        store.fail = False
        cp.close()  # releases the lock even though the checkpoint is broken
    other = EnhancedCheckpoint(checkpoint_dir / "sub.json")
    try:
        assert other.start() is True
    finally:
        other.close()


def test_updates_after_a_failed_save_raise_at_once(
    make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = make_checkpoint(
        "silent", auto_save_interval=10, save_every_seconds=1e9, min_save_interval=0
    )
    cp.start(total_items=100)
    cp.flush()
    monkeypatch.setattr("common.io.atomic.write_new_file", _enospc)
    with pytest.raises(CheckpointSaveError):
        cp.save(force=True)
    with pytest.raises(CheckpointSaveError):
        cp.update(processed=1, successful=1, index=0)


# History -----------------------------------------------------------------------------------------


def test_start_pause_complete_leave_snapshots(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock, checkpoint_dir: Path
) -> None:
    cp = make_checkpoint("hist", clock=fake_clock)
    cp.start(total_items=2)
    fake_clock.advance(1)
    cp.update(processed=1, successful=1, index=0)
    cp.pause()
    fake_clock.advance(1)
    cp.start()
    fake_clock.advance(1)
    cp.update(processed=1, successful=1, index=1)
    cp.complete()
    entries = cp.store.list_history("hist")
    assert [e.reason for e in entries] == ["start", "pause", "start", "complete"]
    files = sorted((checkpoint_dir / "history" / "hist").glob("*.json"))
    assert len(files) == 4
    last = json.loads(files[-1].read_text())
    assert last["record"]["status"] == "completed"
    assert last["snapshot"]["created"] == fake_clock()
    assert cp.store.load_history("hist", entries[1].snapshot_id)["status"] == "paused"


def test_history_keep_limits_snapshots(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("kept", clock=fake_clock, history_keep=3)
    for n in range(3):
        cp.start(total_items=3)
        fake_clock.advance(1)
        cp.update(processed=1, successful=1, index=n)
        cp.pause() if n < 2 else cp.complete()
        fake_clock.advance(1)
    entries = cp.store.list_history("kept")
    assert [e.reason for e in entries] == ["pause", "start", "complete"]
    assert len(list((cp.path.parent / "history" / "kept").iterdir())) == 3


def test_set_position(make_checkpoint: MakeCheckpoint, fake_clock: FakeClock) -> None:
    cp = make_checkpoint("moved", clock=fake_clock)
    cp.start(total_items=20)
    for i in [*range(8), 9]:
        cp.update(processed=1, successful=1, index=i)
    with pytest.raises(InvalidTransitionError, match="'moved' is running"):
        cp.set_position(3)
    assert cp.state.completion.watermark == 8
    cp.pause()
    fake_clock.advance(1)
    cp.set_position(5)
    assert [i for i in range(12) if cp.should_skip(i)] == [0, 1, 2, 3, 4]
    assert cp.state.progress.processed_items == 5
    assert cp.state.last_processed_index == 4
    assert cp.status is CheckpointStatus.PAUSED
    assert [e.reason for e in cp.store.list_history("moved")][-1] == "set-5"
    with pytest.raises(ValueError, match=">= 0"):
        cp.set_position(-1)
    cp.close()
    again = make_checkpoint("moved")
    assert [i for i in range(12) if again.should_skip(i)] == [0, 1, 2, 3, 4]


def test_set_position_reopens_a_completed_stage(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("reopen")
    cp.start(total_items=4)
    _done(cp, range(4))
    cp.complete()
    cp.set_position(2)
    assert cp.status is CheckpointStatus.PAUSED
    assert cp.start() is True
    assert [i for i in range(4) if cp.should_skip(i)] == [0, 1]
