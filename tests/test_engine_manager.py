"""UnifiedCheckpointManager: listing, the seed's report, export, reset and cleanup."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import (
    CheckpointLockedError,
    CheckpointStatus,
    EnhancedCheckpoint,
    OutputConflictError,
    StageNotFoundError,
    UnifiedCheckpointManager,
)
from tests.conftest import FakeClock, MakeCheckpoint

RULE = "=" * 80


@pytest.fixture
def manager(checkpoint_dir: Path, fake_clock: FakeClock) -> Iterator[UnifiedCheckpointManager]:
    mgr = UnifiedCheckpointManager(checkpoint_dir, clock=fake_clock)
    yield mgr
    mgr.close()


def _seed_stages(make_checkpoint: MakeCheckpoint, clock: FakeClock) -> EnhancedCheckpoint:
    """The two stages of seed 003's report; returns the live, running one."""
    discovery = make_checkpoint("stage1_discovery", clock=clock, auto_save_interval=10**6)
    discovery.start(total_items=11000)
    discovery.update(processed=5000, successful=4910, failed=90)
    clock.advance(5000 / 42.3)
    discovery.save()
    validation = make_checkpoint("stage2_validation", clock=clock, auto_save_interval=10**6)
    validation.start(total_items=8000)
    validation.update(processed=8000, successful=7720, failed=280)
    clock.advance(8000 / 35.2)
    validation.complete()
    validation.close()
    return discovery


def test_get_checkpoint_is_cached_and_writes_nothing(
    manager: UnifiedCheckpointManager, checkpoint_dir: Path
) -> None:
    cp = manager.get_checkpoint("stage1_discovery")
    assert isinstance(cp, EnhancedCheckpoint)
    assert cp.stage == "stage1_discovery"
    assert cp.path == checkpoint_dir / "stage1_discovery.json"
    assert manager.get_checkpoint("stage1_discovery") is cp
    assert cp.status is CheckpointStatus.INITIALIZED
    assert not (checkpoint_dir / "stage1_discovery.json").exists()
    assert manager.stages() == []


def test_report_has_the_seed_layout(
    manager: UnifiedCheckpointManager, make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    _seed_stages(make_checkpoint, fake_clock)
    lines = manager.report().splitlines()
    assert lines[:4] == [RULE, "Pipeline Progress Report", RULE, ""]
    assert lines[-1] == RULE
    first = lines.index("Stage: stage1_discovery")
    assert lines[first + 1].startswith("Status: running")
    assert lines[first + 2 : first + 8] == [
        "Progress: 45.5% (5000/11000)",
        "Success Rate: 98.2%",
        "Throughput: 42.3 items/sec",
        "ETA: 2.4 minutes",
        "Successful: 4910 | Failed: 90 | Skipped: 0",
        "",
    ]
    second = lines.index("Stage: stage2_validation")
    assert lines[second : second + 7] == [
        "Stage: stage2_validation",
        "Status: completed",
        "Progress: 100.0% (8000/8000)",
        "Success Rate: 96.5%",
        "Throughput: 35.2 items/sec",
        "Successful: 7720 | Failed: 280 | Skipped: 0",
        "",
    ]
    assert lines[-3].startswith("Overall Pipeline Progress: ") and lines[-3].endswith("%")
    assert lines[-2] == "Active: 1 | Completed: 1 | Failed: 0"


def test_overall_progress_matches_the_seed_report(
    manager: UnifiedCheckpointManager, make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    _seed_stages(make_checkpoint, fake_clock)
    assert "Overall Pipeline Progress: 68.4%" in manager.report().splitlines()


def test_list_checkpoints_reports_a_corrupt_stage_and_leaves_it(
    manager: UnifiedCheckpointManager,
    make_checkpoint: MakeCheckpoint,
    fake_clock: FakeClock,
    checkpoint_dir: Path,
) -> None:
    _seed_stages(make_checkpoint, fake_clock)
    bad = checkpoint_dir / "broken.json"
    bad.write_bytes(b"\x00garbage")
    infos = {info.stage: info for info in manager.list_checkpoints()}
    assert set(infos) == {"broken", "stage1_discovery", "stage2_validation"}
    assert infos["broken"].state is None
    assert infos["broken"].status == "corrupt"
    assert infos["broken"].error is not None and str(bad) in infos["broken"].error
    assert infos["stage1_discovery"].live is True
    assert infos["stage1_discovery"].status == "running"
    assert infos["stage2_validation"].status == "completed"
    assert bad.read_bytes() == b"\x00garbage"
    report = manager.report().splitlines()
    broken = report.index("Stage: broken")
    assert report[broken + 1] == "Status: corrupt"
    assert str(bad) in report[broken + 2]
    assert bad.read_bytes() == b"\x00garbage"
    assert not list(checkpoint_dir.glob("broken.corrupt-*"))


def test_crashed_stage_is_listed_as_recovering(
    manager: UnifiedCheckpointManager, make_checkpoint: MakeCheckpoint
) -> None:
    cp = make_checkpoint("crashed")
    cp.start(total_items=5)
    cp.close()  # still "running" on disk, nobody holds it
    (info,) = manager.list_checkpoints()
    assert info.status == "recovering" and info.live is False
    assert json.loads(cp.path.read_text())["status"] == "running"  # listing changed nothing


def test_export_writes_every_stage(
    manager: UnifiedCheckpointManager,
    make_checkpoint: MakeCheckpoint,
    fake_clock: FakeClock,
    checkpoint_dir: Path,
    tmp_path: Path,
) -> None:
    _seed_stages(make_checkpoint, fake_clock)
    (checkpoint_dir / "broken.json").write_text("[]")
    target = tmp_path / "reports" / "progress_report.json"
    document = manager.export(target)
    on_disk = json.loads(target.read_text())
    assert on_disk == json.loads(json.dumps(document))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert set(on_disk["stages"]) == {"broken", "stage1_discovery", "stage2_validation"}
    discovery = on_disk["stages"]["stage1_discovery"]
    assert discovery["status"] == "running" and discovery["live"] is True
    assert discovery["checkpoint"]["progress"]["processed_items"] == 5000
    assert discovery["derived"]["success_rate"] == 98.2
    assert discovery["derived"]["throughput"] == pytest.approx(42.3)
    assert on_disk["stages"]["stage2_validation"]["checkpoint"]["status"] == "completed"
    assert "error" in on_disk["stages"]["broken"]
    assert on_disk["exported_at"] == fake_clock()
    assert not [p for p in target.parent.iterdir() if p != target]


def test_export_over_a_stage_file_is_refused_writing_nothing(
    manager: UnifiedCheckpointManager,
    make_checkpoint: MakeCheckpoint,
    checkpoint_dir: Path,
    tmp_path: Path,
) -> None:
    """``export(path)`` replaced whatever ``path`` was: the output a stage is writing, its
    checkpoint, another directory's running stage's output. Each is refused now, the file kept;
    an ordinary file is still replaced."""
    output = tmp_path / "out" / "records.jsonl"
    live = make_checkpoint("stage2_validation")
    live.attach_output(output)
    live.start(total_items=2)
    live.update(processed=1, successful=1, index=0, record={"url": "u0"})
    live.save(force=True)
    elsewhere = EnhancedCheckpoint(tmp_path / "other" / "stage9.json")
    theirs = tmp_path / "theirs.jsonl"
    elsewhere.attach_output(theirs)
    elsewhere.start("stage9", total_items=1)
    try:
        for target, error, needle in (
            (output, OutputConflictError, "the output of stage 'stage2_validation'"),
            (checkpoint_dir / "stage2_validation.json", OutputConflictError, "checkpoint file"),
            (theirs, CheckpointLockedError, str(os.getpid())),
        ):
            before = target.read_bytes()
            with pytest.raises(error, match=needle):
                manager.export(target)
            assert target.read_bytes() == before
    finally:
        elsewhere.close()
    ordinary = tmp_path / "progress.json"
    ordinary.write_text("old\n")
    assert manager.export(ordinary)["stages"].keys() == {"stage2_validation"}
    assert json.loads(ordinary.read_text())["stages"].keys() == {"stage2_validation"}


def test_unknown_stage_lists_the_known_ones(
    manager: UnifiedCheckpointManager, make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    _seed_stages(make_checkpoint, fake_clock)
    with pytest.raises(StageNotFoundError) as info:
        manager.reset("stage9")
    message = str(info.value)
    assert "'stage9'" in message
    assert "stage1_discovery" in message and "stage2_validation" in message
    assert not message.startswith('"')  # not KeyError's quoting
    assert info.value.known == ("stage1_discovery", "stage2_validation")
    with pytest.raises(StageNotFoundError):
        manager.require("stage9")


def test_reset_one_stage_and_all(
    manager: UnifiedCheckpointManager,
    make_checkpoint: MakeCheckpoint,
    fake_clock: FakeClock,
    checkpoint_dir: Path,
) -> None:
    discovery = _seed_stages(make_checkpoint, fake_clock)
    discovery.pause()
    discovery.close()
    fake_clock.advance(1)
    assert manager.reset("stage2_validation") == ["stage2_validation"]
    assert manager.stages() == ["stage1_discovery"]
    assert not (checkpoint_dir / "stage2_validation.json").exists()
    assert not (checkpoint_dir / "stage2_validation.backup.json").exists()
    reasons = [e.reason for e in manager.store.list_history("stage2_validation")]
    assert reasons[-1] == "before-reset"
    fresh = manager.get_checkpoint("stage2_validation")
    assert fresh.status is CheckpointStatus.INITIALIZED
    assert fresh.state.progress.processed_items == 0

    _seed = make_checkpoint("stage3_async_enrichment")
    _seed.start(total_items=1)
    _seed.pause()
    _seed.close()
    assert manager.reset("all") == ["stage1_discovery", "stage3_async_enrichment"]
    assert manager.stages() == []
    assert not list(checkpoint_dir.glob("*.json"))


def test_reset_refused_while_a_writer_is_live(
    manager: UnifiedCheckpointManager, make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    """A reset beside a live writer would be undone by its next save: refused, nothing changed."""
    live = make_checkpoint("busy")
    live.start(total_items=3)
    live.update(processed=1, successful=1, index=0)
    live.save()
    idle = make_checkpoint("a_idle")  # sorted before "busy": "all" reaches it first
    idle.start(total_items=1)
    idle.pause()
    idle.close()
    saved = (checkpoint_dir / "busy.json").read_bytes()
    idle_saved = (checkpoint_dir / "a_idle.json").read_bytes()
    with pytest.raises(CheckpointLockedError) as info:
        manager.reset("busy")
    assert str(info.value) == (
        f"stage busy is running (pid {os.getpid()}); stop it first (nothing was changed)"
    )
    with pytest.raises(CheckpointLockedError):
        manager.reset("all")
    assert (checkpoint_dir / "busy.json").read_bytes() == saved
    assert (checkpoint_dir / "a_idle.json").read_bytes() == idle_saved  # none went, not some
    live.pause()
    live.close()
    assert manager.reset("busy") == ["busy"]
    assert not (checkpoint_dir / "busy.json").exists()


def test_reset_does_not_touch_a_stage_whose_name_extends_it(
    manager: UnifiedCheckpointManager, make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    for stage in ("s", "s.t"):
        cp = make_checkpoint(stage)
        cp.start()
        cp.update(processed=1, successful=1, key=f"key-of-{stage}")
        cp.pause()
        cp.close()
    manager.reset("s")
    assert (checkpoint_dir / "s.t.keys.jsonl").exists()
    other = make_checkpoint("s.t")
    assert other.is_key_done("key-of-s.t")


def _cleanup_scene(make_checkpoint: MakeCheckpoint) -> EnhancedCheckpoint:
    """Stages in every state, with history; their files get the real current mtime."""
    done = make_checkpoint("done")
    done.start(total_items=1)
    done.update(processed=1, successful=1, index=0)
    done.complete()
    done.close()
    paused = make_checkpoint("paused")
    paused.start(total_items=2)
    paused.pause()
    paused.close()
    crashed = make_checkpoint("crashed")
    crashed.start(total_items=2)
    crashed.close()
    live = make_checkpoint("live")
    live.start(total_items=2)
    live.flush()
    return live


def test_cleanup_removes_old_history_and_keeps_current_checkpoints(
    make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    _cleanup_scene(make_checkpoint)
    later = FakeClock(time.time() + 8 * 86400)
    manager = UnifiedCheckpointManager(checkpoint_dir, clock=later)
    try:
        paused_history = [e.snapshot_id for e in manager.store.list_history("paused")]
        assert len(paused_history) == 2  # start, pause
        planned = manager.cleanup(days=7, keep_latest=2, dry_run=True)
        assert manager.store.list_history("paused") != []  # a dry run removes nothing
        removed = manager.cleanup(days=7, keep_latest=2)
        assert removed == planned
        assert "done" not in removed  # keep_latest counts the current checkpoint first
        assert f"paused/history/{paused_history[0]}" in removed
        assert manager.stages() == ["crashed", "done", "live", "paused"]
        assert [e.snapshot_id for e in manager.store.list_history("paused")] == [paused_history[1]]
    finally:
        manager.close()


def test_cleanup_keep_latest_0_removes_old_completed_stages(
    make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    live = _cleanup_scene(make_checkpoint)
    manager = UnifiedCheckpointManager(checkpoint_dir, clock=FakeClock(time.time() + 8 * 86400))
    try:
        # Old snapshots of a stage a live writer holds: refused like a reset, nothing removed.
        before = sorted(str(p.relative_to(checkpoint_dir)) for p in checkpoint_dir.rglob("*"))
        with pytest.raises(CheckpointLockedError, match=r"^stage live is running \(pid \d+\)"):
            manager.cleanup(days=7, keep_latest=0)
        assert sorted(str(p.relative_to(checkpoint_dir)) for p in checkpoint_dir.rglob("*")) == (
            before
        )
        live.pause()
        live.close()
        removed = manager.cleanup(days=7, keep_latest=0)
        assert "done" in removed
        assert manager.stages() == ["crashed", "live", "paused"]
        for stage in ("crashed", "live", "paused"):
            assert (checkpoint_dir / f"{stage}.json").exists()
        assert [e.reason for e in manager.store.list_history("done")] == ["before-cleanup"]
    finally:
        manager.close()


def test_cleanup_keeps_everything_younger_than_the_cutoff(
    make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    _cleanup_scene(make_checkpoint)
    before = sorted(str(p.relative_to(checkpoint_dir)) for p in checkpoint_dir.rglob("*"))
    manager = UnifiedCheckpointManager(checkpoint_dir, clock=FakeClock(time.time() + 86400))
    try:
        assert manager.cleanup(days=7) == []
    finally:
        manager.close()
    after = sorted(str(p.relative_to(checkpoint_dir)) for p in checkpoint_dir.rglob("*"))
    assert after == before


def test_restore_refuses_a_snapshot_whose_done_keys_a_reset_cleared(tmp_path: Path) -> None:
    """SQLite keeps done keys in its own table, which a reset clears: the snapshot's keys are
    gone, so restoring it would redo (and write twice) every keyed item. Refused, unchanged."""
    from common.errors import CheckpointError
    from common.stores import SqliteStore

    store = SqliteStore(tmp_path)
    checkpoint = EnhancedCheckpoint("keyed", store=store)
    checkpoint.start(total_items=5)
    for n in range(3):
        checkpoint.update(processed=1, successful=1, key=f"https://k.test/{n}")
    checkpoint.pause()
    checkpoint.close()
    manager = UnifiedCheckpointManager(tmp_path, store=store)
    try:
        manager.reset("keyed")
        snapshot = manager.store.list_history("keyed")[-1]
        assert snapshot.reason == "before-reset"
        with pytest.raises(CheckpointError, match=r"counts 3 done keys but .* holds 0"):
            manager.restore("keyed", snapshot.snapshot_id)
        assert manager.stages() == []
    finally:
        manager.close()
