"""Status machine, crash detection (running -> recovering) and the one-writer lock."""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import (
    CheckpointLockedError,
    CheckpointStatus,
    EnhancedCheckpoint,
    InvalidTransitionError,
)
from common.status import allowed_transitions, check_transition
from tests._live_writer import live_writer
from tests.conftest import MakeCheckpoint

S = CheckpointStatus

# The status machine as the engine documents it (seed 003's meanings, SPEC section 5).
EXPECTED_ALLOWED: dict[CheckpointStatus, set[CheckpointStatus]] = {
    S.INITIALIZED: {S.RUNNING, S.FAILED},
    S.RUNNING: {S.PAUSED, S.COMPLETED, S.FAILED, S.RECOVERING},
    S.PAUSED: {S.RUNNING, S.FAILED},
    S.RECOVERING: {S.RUNNING, S.PAUSED, S.FAILED},
    S.FAILED: {S.RUNNING},
    S.COMPLETED: set(),
}

ALL_PAIRS = [(a, b) for a in S for b in S]


def test_six_statuses_with_seed_values() -> None:
    assert [s.value for s in S] == [
        "initialized",
        "running",
        "paused",
        "completed",
        "failed",
        "recovering",
    ]


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_every_transition_allowed_or_refused(
    current: CheckpointStatus, new: CheckpointStatus
) -> None:
    if new is current or new in EXPECTED_ALLOWED[current]:
        check_transition(current, new, stage="stage_x")
        return
    with pytest.raises(InvalidTransitionError) as info:
        check_transition(current, new, stage="stage_x")
    message = str(info.value)
    assert "'stage_x'" in message
    assert current.value in message and new.value in message
    assert info.value.stage == "stage_x"


def test_allowed_transitions_table_matches() -> None:
    for status in S:
        assert set(allowed_transitions(status)) == EXPECTED_ALLOWED[status]


def test_completed_to_running_refusal_says_how_to_redo() -> None:
    with pytest.raises(InvalidTransitionError, match=r"reset it \(or run with --fresh\)"):
        check_transition(S.COMPLETED, S.RUNNING, stage="s")


# Through EnhancedCheckpoint ---------------------------------------------------------------------


def test_actions_before_start_are_refused_naming_the_stage(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("stage_a")
    assert cp.status is S.INITIALIZED
    with pytest.raises(InvalidTransitionError, match=r"'stage_a'.*call start\(\) first"):
        cp.update(processed=1, index=0)
    with pytest.raises(InvalidTransitionError, match="'stage_a'"):
        cp.pause()
    with pytest.raises(InvalidTransitionError, match="'stage_a'"):
        cp.complete()
    assert cp.status is S.INITIALIZED


def test_lifecycle_running_paused_running_completed(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("life")
    assert cp.start("life", total_items=3) is True
    assert cp.status is S.RUNNING
    cp.update(processed=1, successful=1, index=0)
    cp.pause()
    assert cp.status is S.PAUSED
    with pytest.raises(InvalidTransitionError, match="cannot update while paused"):
        cp.update(processed=1, index=1)
    assert cp.start() is True
    assert cp.status is S.RUNNING
    cp.update(processed=1, successful=1, index=1)
    cp.update(processed=1, successful=1, index=2)
    cp.complete()
    assert cp.status is S.COMPLETED
    assert json.loads(cp.path.read_text())["status"] == "completed"
    with pytest.raises(InvalidTransitionError, match=r"'life'.*completed to failed"):
        cp.fail("late error")
    with pytest.raises(InvalidTransitionError, match="cannot update while completed"):
        cp.update(processed=1, index=3)
    with pytest.raises(InvalidTransitionError, match="completed to paused"):
        cp.pause()
    cp.complete()  # staying completed is not an error
    assert cp.start() is False  # a completed stage on the same input has nothing to do
    assert cp.status is S.COMPLETED


def test_failed_stage_can_be_started_again(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("retry")
    cp.start(total_items=2)
    cp.update(processed=1, successful=1, index=0)
    cp.fail(RuntimeError("boom"))
    assert cp.status is S.FAILED
    with pytest.raises(InvalidTransitionError, match="failed to paused"):
        cp.pause()
    assert cp.start() is True
    assert cp.status is S.RUNNING
    assert cp.should_skip(0) and not cp.should_skip(1)


def test_fail_from_initialized_is_allowed(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("early")
    cp.fail("could not even start")
    assert cp.status is S.FAILED
    assert json.loads(cp.path.read_text())["status"] == "failed"


# Crash detection ---------------------------------------------------------------------------------


def _crash_after_saving_running(cp: EnhancedCheckpoint, processed: int) -> None:
    """Leave ``cp``'s file saying running, as a killed process would, and free its lock."""
    cp.start(total_items=100)
    for i in range(processed):
        cp.update(processed=1, successful=1, index=i)
    cp.save()
    cp.close()  # close() neither pauses nor saves: on disk the stage is still running
    assert json.loads(cp.path.read_text())["status"] == "running"


def test_running_checkpoint_loads_as_recovering_with_seed_log_lines(
    make_checkpoint: MakeCheckpoint, caplog: pytest.LogCaptureFixture
) -> None:
    _crash_after_saving_running(make_checkpoint("stage1_discovery"), processed=7)
    caplog.set_level(logging.INFO)
    cp = make_checkpoint("stage1_discovery")
    assert cp.status is S.RECOVERING
    assert cp.recovered_from_crash is True
    assert cp.state.recoveries == 1
    messages = [r.getMessage() for r in caplog.records]
    detected = "Detected incomplete checkpoint for stage1_discovery. Resuming from 7 items"
    changed = "Checkpoint status changed: running -> recovering"
    assert detected in messages and changed in messages
    assert messages.index(detected) < messages.index(changed)
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels[detected] == logging.WARNING
    assert levels[changed] == logging.INFO

    caplog.clear()
    assert cp.start() is True
    assert cp.status is S.RUNNING
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Resuming from last processed index: 6") for m in messages)
    assert "Skipping already processed items..." in messages
    assert "Processing resumed" in messages
    assert [i for i in range(10) if cp.should_skip(i)] == list(range(7))


def test_recovery_is_counted_in_the_saved_file(make_checkpoint: MakeCheckpoint) -> None:
    _crash_after_saving_running(make_checkpoint("count"), processed=2)
    cp = make_checkpoint("count")
    cp.start()
    cp.save()
    assert json.loads(cp.path.read_text())["recoveries"] == 1


def test_running_checkpoint_held_by_a_live_writer_stays_running(
    make_checkpoint: MakeCheckpoint, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_checkpoint("busy")
    writer.start(total_items=10)
    writer.update(processed=1, successful=1, index=0)
    writer.save()
    caplog.set_level(logging.INFO)
    observer = make_checkpoint("busy")
    assert observer.status is S.RUNNING
    assert observer.recovered_from_crash is False
    assert observer.is_locked_elsewhere is True
    assert not any("Detected incomplete" in r.getMessage() for r in caplog.records)


# Lock ----------------------------------------------------------------------------------------------


def test_second_object_in_same_process_is_refused(make_checkpoint: MakeCheckpoint) -> None:
    first = make_checkpoint("one_writer")
    first.start(total_items=5)
    second = make_checkpoint("one_writer")
    with pytest.raises(CheckpointLockedError) as info:
        second.start(total_items=5)
    assert "'one_writer'" in str(info.value)
    assert str(os.getpid()) in str(info.value)
    assert info.value.holder_pid == os.getpid()
    assert info.value.stage == "one_writer"
    # The refused object changed nothing.
    assert first.status is S.RUNNING
    first.update(processed=1, successful=1, index=0)
    first.save()


def test_lock_is_released_by_close(make_checkpoint: MakeCheckpoint) -> None:
    first = make_checkpoint("handover")
    first.start(total_items=5)
    first.pause()
    first.close()
    second = make_checkpoint("handover")
    assert second.start() is True


CHILD = textwrap.dedent(
    """
    import sys
    from common import EnhancedCheckpoint

    cp = EnhancedCheckpoint(sys.argv[1], auto_save_interval=1000)
    cp.start("held_stage", total_items=10)
    for i in range(3):
        cp.update(processed=1, successful=1, index=i)
    cp.save()
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


@pytest.fixture
def lock_holder(checkpoint_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process that has started ``held_stage`` and waits on stdin."""
    with live_writer(CHILD, checkpoint_dir / "held_stage.json") as child:
        yield child


def test_subprocess_holding_the_lock_refuses_the_parent_until_killed(
    lock_holder: subprocess.Popen[str], make_checkpoint: MakeCheckpoint
) -> None:
    parent = make_checkpoint("held_stage")
    assert parent.status is S.RUNNING  # a live holder: not a crash
    assert parent.is_locked_elsewhere
    with pytest.raises(CheckpointLockedError) as info:
        parent.start()
    message = str(info.value)
    assert "'held_stage'" in message
    assert f"process {lock_holder.pid}" in message
    assert info.value.holder_pid == lock_holder.pid

    os.kill(lock_holder.pid, signal.SIGKILL)
    assert lock_holder.wait(timeout=10) == -signal.SIGKILL

    after = make_checkpoint("held_stage")
    assert after.status is S.RECOVERING
    assert after.start() is True
    assert [i for i in range(10) if after.should_skip(i)] == [0, 1, 2]
    assert after.state.progress.processed_items == 3


def test_refused_object_detects_the_crash_once_the_holder_died(
    lock_holder: subprocess.Popen[str], make_checkpoint: MakeCheckpoint
) -> None:
    parent = make_checkpoint("held_stage")
    with pytest.raises(CheckpointLockedError):
        parent.start()
    lock_holder.kill()
    lock_holder.wait(timeout=10)
    assert parent.start() is True
    assert parent.recovered_from_crash is True
    assert parent.state.recoveries == 1


def test_edges_by_hand_are_explicit_and_named() -> None:
    """set_position reopens a completed stage and reset returns any stage to initialized,
    each only through its own named edge (review A.1 #20)."""
    with pytest.raises(InvalidTransitionError):
        check_transition(S.COMPLETED, S.PAUSED, stage="s")
    check_transition(S.COMPLETED, S.PAUSED, stage="s", by="set_position")
    with pytest.raises(InvalidTransitionError):
        check_transition(S.COMPLETED, S.RUNNING, stage="s", by="set_position")
    for status in S:
        check_transition(status, S.INITIALIZED, stage="s", by="reset")
    with pytest.raises(InvalidTransitionError):
        check_transition(S.COMPLETED, S.INITIALIZED, stage="s")


def test_status_has_one_writer() -> None:
    """Only common.status.transition assigns a status (review B.1.3): no module of the
    engine or its integrations writes ``.status = ...`` itself."""
    root = Path(__file__).resolve().parent.parent / "common"
    writers = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == "status":
                        writers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert writers == ["status.py:" + str(_transition_assignment_line(root / "status.py"))]


def _transition_assignment_line(path: Path) -> int:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == "transition":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Assign) and any(
                    isinstance(t, ast.Attribute) and t.attr == "status" for t in inner.targets
                ):
                    return inner.lineno
    raise AssertionError("transition() assigns no status")
