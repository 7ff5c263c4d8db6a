"""One output file, one stage: two stages never destroy each other's records.

Stage B's fresh start used to truncate the file stage A had completed ("Truncated shared.jsonl
(183890 bytes) for a fresh start"), and run at once the two interleaved their lines in one file
while both said completed. Now B is refused with one line naming the file and the other stage,
before anything is truncated: when a stage of the same checkpoint directory records the file
(its output or its failed sidecar), and while another process writes it (the journal holds an
exclusive ``flock`` on the file for as long as it has it open). A resume that names another
output than its checkpoint's is refused naming both.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from common import (
    AsyncCheckpointTracker,
    CheckpointError,
    CheckpointLockedError,
    EnhancedCheckpoint,
    OutputConflictError,
)
from common.io.locking import FlockHeld, flock_or_close
from tests._live_writer import live_writer


def _complete_stage(directory: Path, stage: str, output: Path, items: int = 3) -> None:
    checkpoint = EnhancedCheckpoint(directory / f"{stage}.json")
    checkpoint.attach_output(output)
    checkpoint.start(stage, total_items=items)
    for index in range(items):
        checkpoint.update(processed=1, successful=1, index=index, record={"url": f"{stage}{index}"})
    checkpoint.update(processed=1, failed=1, failed_record={"url": "bad", "error": "x"})
    checkpoint.complete()
    checkpoint.close()


def _files(*paths: Path) -> dict[Path, bytes | None]:
    return {path: path.read_bytes() if path.exists() else None for path in paths}


@pytest.mark.parametrize(
    ("output", "failed"),
    [
        ("out.jsonl", None),
        ("sub/../out.jsonl", None),  # another spelling of the same file
        ("out.failed.jsonl", None),  # A's failed sidecar as B's output
        ("mine.jsonl", "out.jsonl"),  # A's output as B's failed sidecar
    ],
    ids=["same", "resolved", "sidecar", "as-sidecar"],
)
def test_a_stage_is_refused_an_output_another_stage_of_the_directory_records(
    tmp_path: Path, output: str, failed: str | None
) -> None:
    (tmp_path / "sub").mkdir()
    _complete_stage(tmp_path / "ck", "A", tmp_path / "out.jsonl")
    before = _files(tmp_path / "out.jsonl", tmp_path / "out.failed.jsonl", tmp_path / "ck/A.json")
    assert before[tmp_path / "out.failed.jsonl"]

    second = EnhancedCheckpoint(tmp_path / "ck" / "B.json")
    with pytest.raises(OutputConflictError) as raised:
        second.attach_output(
            tmp_path / output, failed_path=tmp_path / failed if failed is not None else None
        )
    message = str(raised.value)
    assert message.startswith("stage 'B' cannot write ")
    assert "stage 'A'" in message and "nothing was changed" in message
    assert "\n" not in message
    second.start("B", total_items=3)  # B itself may run, without that output
    second.close()
    assert _files(*before) == before
    assert not (tmp_path / "mine.jsonl").exists()


def test_a_copied_tracker_script_with_the_same_output_is_refused_before_it_truncates(
    tmp_path: Path,
) -> None:
    # /tmp/newbie/mine/shared_seq.sh: stage A completes, stage B (the same script, another
    # stage name) starts fresh on the same output file.
    output = tmp_path / "shared.jsonl"

    async def run(stage: str) -> None:
        async with AsyncCheckpointTracker(tmp_path / "ck", stage, output_file=output) as tracker:
            tracker.start(total_items=20)
            for index in range(20):
                if not tracker.should_skip(index):
                    tracker.update(
                        processed=1, successful=1, index=index, record={"url": f"{stage}/{index}"}
                    )

    anyio.run(run, "A")
    before = _files(output, tmp_path / "ck" / "A.json")
    with pytest.raises(OutputConflictError, match=r"stage 'B' cannot write .*shared\.jsonl"):
        anyio.run(run, "B")
    assert _files(*before) == before
    assert not (tmp_path / "ck" / "B.json").exists()  # refused before B recorded anything


def test_a_start_naming_an_output_another_stage_records_is_refused(tmp_path: Path) -> None:
    # An output the caller writes itself (python -m enrich --workers exports into it).
    _complete_stage(tmp_path / "ck", "A", tmp_path / "out.jsonl")
    before = _files(tmp_path / "out.jsonl")
    checkpoint = EnhancedCheckpoint(tmp_path / "ck" / "B.json")
    with pytest.raises(OutputConflictError, match="stage 'A'"):
        checkpoint.start("B", output_file=tmp_path / "out.jsonl")
    assert checkpoint.status.value == "initialized"
    checkpoint.close()
    assert _files(*before) == before


HOLDER = """
import sys
from common import EnhancedCheckpoint
checkpoint = EnhancedCheckpoint(sys.argv[1])
checkpoint.attach_output(sys.argv[2])
checkpoint.start("A", total_items=2)
checkpoint.update(processed=1, successful=1, index=0, record={"url": "a0"})
checkpoint.save(force=True)
print("ready", flush=True)
if sys.stdin.readline().strip() == "finish":
    checkpoint.update(processed=1, successful=1, index=1, record={"url": "a1"})
    checkpoint.complete()
    checkpoint.close()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A live process writing stage A (its own checkpoint directory) into shared.jsonl."""
    with live_writer(HOLDER, tmp_path / "ckA" / "A.json", tmp_path / "shared.jsonl") as process:
        yield process


def test_an_output_another_process_writes_is_refused_naming_its_pid(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    # /tmp/newbie/mine/shared_out.sh: two stages started at once on one output file.
    output = tmp_path / "shared.jsonl"
    before = _files(output)
    assert before[output] == b'{"url":"a0"}\n'
    second = EnhancedCheckpoint(tmp_path / "ckB" / "B.json")
    second.attach_output(output)  # another directory: no record tells, the lock does
    with pytest.raises(CheckpointLockedError) as raised:
        second.start("B", total_items=2)
    assert raised.value.holder_pid == holder.pid
    message = str(raised.value)
    assert str(output) in message and f"process {holder.pid}" in message
    assert "nothing was changed" in message
    second.close()
    assert _files(output) == before

    assert holder.stdin is not None
    holder.stdin.write("finish\n")
    holder.stdin.flush()
    assert holder.wait(timeout=60) == 0
    assert output.read_bytes() == b'{"url":"a0"}\n{"url":"a1"}\n'


def test_the_lock_goes_with_a_killed_writer(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    # Stage A resumes over its own output: the kernel dropped the dead writer's lock.
    resumed = EnhancedCheckpoint(tmp_path / "ckA" / "A.json")
    resumed.attach_output(tmp_path / "shared.jsonl")
    assert resumed.start("A", total_items=2)
    assert resumed.should_skip(0) and not resumed.should_skip(1)
    resumed.close()


def test_one_writer_per_output_in_one_process_too(tmp_path: Path) -> None:
    first = EnhancedCheckpoint(tmp_path / "ck1" / "A.json")
    first.attach_output(tmp_path / "out.jsonl")
    first.start("A")
    second = EnhancedCheckpoint(tmp_path / "ck2" / "B.json")
    second.attach_output(tmp_path / "out.jsonl")
    with pytest.raises(CheckpointLockedError, match=r"out\.jsonl is being written by process"):
        second.start("B")
    second.close()
    first.close()  # closing gives the file up
    third = EnhancedCheckpoint(tmp_path / "ck2" / "B.json")
    third.attach_output(tmp_path / "out.jsonl")
    assert third.start("B")
    third.close()


def test_a_resume_naming_another_output_is_refused_naming_both(tmp_path: Path) -> None:
    # /tmp/newbie "runs/mv": the output moved to pages2.jsonl between runs; the old message
    # said pages2.jsonl was missing its committed bytes (they went to pages.jsonl).
    path = tmp_path / "ck" / "s.json"
    pages, pages2 = tmp_path / "pages.jsonl", tmp_path / "pages2.jsonl"
    checkpoint = EnhancedCheckpoint(path)
    checkpoint.attach_output(pages)
    checkpoint.start("s", total_items=4)
    checkpoint.update(processed=1, successful=1, index=0, record={"url": "0"})
    checkpoint.pause()
    checkpoint.close()
    pages2.write_bytes(b'{"url":"mine"}\n{"url":"mine too"}\n')  # must not be cut to 13 bytes
    before = _files(pages, pages2, path)

    for attach_first in (True, False):
        resumed = EnhancedCheckpoint(path)
        with pytest.raises(OutputConflictError) as raised:
            if attach_first:  # the tracker's order: attach, then start
                resumed.attach_output(pages2)
                resumed.start("s", total_items=4)
            else:  # attached to a running stage: cut back at once
                resumed.start("s", total_items=4)
                resumed.attach_output(pages2)
        assert str(raised.value) == (
            f"stage 's': the checkpoint's output is {pages}, this run names {pages2}; pass "
            f"the same one, or start fresh (nothing was changed)"
        )
        resumed.close()
        assert _files(pages, pages2) == {k: v for k, v in before.items() if k != path}

    fresh = EnhancedCheckpoint(path)
    fresh.attach_output(pages2)
    assert fresh.start("s", total_items=4, fresh=True)
    assert fresh.state.output_file == str(pages2)
    fresh.close()


def test_the_one_flock_step_names_the_holder_and_keeps_no_descriptor(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    # common.io.locking.flock_or_close: the journal's lock and the stage lock both take it.
    output = tmp_path / "shared.jsonl"
    fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    assert flock_or_close(fd, output) == FlockHeld(output, holder.pid)
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the refusal
    assert holder.stdin is not None
    holder.stdin.write("finish\n")
    holder.stdin.flush()
    assert holder.wait(timeout=60) == 0
    fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        assert flock_or_close(fd, output, attempts=3) == fd
    finally:
        os.close(fd)


# A file this checkpoint never wrote -------------------------------------------------------------


def test_a_first_start_on_a_file_another_checkpoint_completed_is_refused(tmp_path: Path) -> None:
    """Stage B in another checkpoint directory, pointed at the file stage A completed: no
    record of B's directory names it and A holds no lock once it finished, so B's first start
    used to truncate A's records ("Truncated ... for a fresh start"). It is refused naming the
    file and the way out, and A's file, B's directory and A's record stay as they were."""
    output = tmp_path / "shared.jsonl"
    _complete_stage(tmp_path / "ckA", "A", output)
    before = _files(output, output.with_name("shared.failed.jsonl"))
    checkpoint = EnhancedCheckpoint(tmp_path / "ckB" / "B.json")
    checkpoint.attach_output(output)
    with pytest.raises(OutputConflictError) as refused:
        checkpoint.start(total_items=3)
    checkpoint.close()
    message = str(refused.value)
    assert str(output) in message and "never wrote" in message, message
    assert "delete it" in message and "nothing was changed" in message, message
    assert refused.value.path == output
    assert _files(output, output.with_name("shared.failed.jsonl")) == before
    assert not (tmp_path / "ckB" / "B.json").exists()
    resumed = EnhancedCheckpoint(tmp_path / "ckA" / "A.json")
    resumed.attach_output(output)
    assert resumed.start(total_items=3) is False  # still completed, its records all there
    resumed.close()


def test_a_sidecar_this_checkpoint_never_wrote_is_refused_too(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    sidecar = output.with_name("out.failed.jsonl")
    sidecar.write_bytes(b'{"url": "yours"}\n')
    checkpoint = EnhancedCheckpoint(tmp_path / "ck" / "B.json")
    checkpoint.attach_output(output)
    with pytest.raises(OutputConflictError, match=r"out\.failed\.jsonl"):
        checkpoint.start(total_items=3)
    checkpoint.close()
    assert sidecar.read_bytes() == b'{"url": "yours"}\n' and not output.exists()


def test_an_output_named_to_start_and_attached_after_it_is_refused_too(tmp_path: Path) -> None:
    """``start(output_file=...)`` first, ``attach_output()`` after it: the start checked only
    the directory's other records, and the attach then emptied the file another checkpoint
    completed. The start is refused by the same rule, nothing changed; fresh=True overwrites."""
    output = tmp_path / "shared.jsonl"
    _complete_stage(tmp_path / "ckA", "A", output)
    before = _files(output, output.with_name("shared.failed.jsonl"))
    checkpoint = EnhancedCheckpoint(tmp_path / "ckB" / "B.json")
    with pytest.raises(OutputConflictError, match="never wrote") as refused:
        checkpoint.start("B", total_items=3, output_file=output)
    assert refused.value.path == output
    assert _files(output, output.with_name("shared.failed.jsonl")) == before
    assert checkpoint.start("B", total_items=3, output_file=output, fresh=True)
    checkpoint.attach_output(output)
    checkpoint.close()
    assert output.read_bytes() == b""


def test_its_own_output_still_starts_over(tmp_path: Path) -> None:
    """What the stage wrote itself is still cut or emptied as before: a fresh start, a
    restart after ``reset`` (the record gone, its snapshot in the history), a start after a
    crash that left records the checkpoint never counted; and fresh=True overwrites a file
    it never wrote (asked for in so many words)."""
    from common.manager import UnifiedCheckpointManager

    directory, output = tmp_path / "ck", tmp_path / "out.jsonl"
    _complete_stage(directory, "B", output)
    checkpoint = EnhancedCheckpoint(directory / "B.json")
    checkpoint.attach_output(output)
    assert checkpoint.start(total_items=3, fresh=True)
    checkpoint.close()
    assert output.read_bytes() == b""

    _complete_stage(directory, "C", tmp_path / "c.jsonl")
    manager = UnifiedCheckpointManager(directory)
    assert manager.reset("C") == ["C"]
    manager.close()
    checkpoint = EnhancedCheckpoint(directory / "C.json")
    checkpoint.attach_output(tmp_path / "c.jsonl")
    assert checkpoint.start(total_items=3)
    checkpoint.close()
    assert (tmp_path / "c.jsonl").read_bytes() == b""

    other = tmp_path / "theirs.jsonl"
    other.write_bytes(b'{"url": "theirs"}\n')
    checkpoint = EnhancedCheckpoint(tmp_path / "ck2" / "D.json")
    checkpoint.attach_output(other)
    assert checkpoint.start(total_items=3, fresh=True)
    checkpoint.close()
    assert other.read_bytes() == b""


@pytest.mark.parametrize(
    ("stage", "output"),
    [
        ("B", "ck/B.json"),  # its own record: the next save renames the record over it
        ("B", "ck/B.keys.jsonl"),  # its own keys journal
        ("B", "ck/A.keys.jsonl"),  # another stage's journal, empty so far
        ("B", "ck/A.backup.json"),
    ],
    ids=["own-record", "own-journal", "other-journal", "other-backup"],
)
def test_an_output_that_is_a_checkpoint_file_of_the_directory_is_refused(
    tmp_path: Path, stage: str, output: str
) -> None:
    _complete_stage(tmp_path / "ck", "A", tmp_path / "out.jsonl")
    files = sorted(path for path in (tmp_path / "ck").rglob("*") if path.is_file())
    before = _files(*files)

    checkpoint = EnhancedCheckpoint(tmp_path / "ck" / f"{stage}.json")
    with pytest.raises(OutputConflictError) as raised:
        checkpoint.attach_output(tmp_path / output)
    message = str(raised.value)
    assert message.startswith(f"stage {stage!r} cannot write {tmp_path / output}: it is ")
    assert "checkpoint file" in message and "nothing was changed" in message
    checkpoint.close()
    assert _files(*files) == before
    assert sorted(path for path in (tmp_path / "ck").rglob("*") if path.is_file()) == files


def test_a_tracker_output_named_as_its_own_checkpoint_is_refused_before_it_starts(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        async with AsyncCheckpointTracker(
            tmp_path / "ck", "mine", output_file=tmp_path / "ck" / "mine.json"
        ) as tracker:
            tracker.start(total_items=1)

    with pytest.raises(OutputConflictError, match="its own checkpoint file"):
        anyio.run(run)
    assert not (tmp_path / "ck" / "mine.json").exists()


@pytest.mark.parametrize("how", ["attached", "named to start"])
def test_a_completed_stage_run_again_naming_another_output_is_refused(
    tmp_path: Path, how: str
) -> None:
    """ "Nothing to do" would send its user to a file that holds none of the records."""
    _complete_stage(tmp_path / "ck", "A", tmp_path / "out.jsonl")
    (tmp_path / "mine.jsonl").write_text("mine\n")
    before = _files(tmp_path / "out.jsonl", tmp_path / "mine.jsonl", tmp_path / "ck/A.json")

    again = EnhancedCheckpoint(tmp_path / "ck" / "A.json")
    if how == "attached":
        again.attach_output(tmp_path / "mine.jsonl")
    with pytest.raises(OutputConflictError) as raised:
        again.start(
            "A", total_items=3, output_file=tmp_path / "mine.jsonl" if how != "attached" else None
        )
    assert str(raised.value) == (
        f"stage 'A' completed with its records in {tmp_path / 'out.jsonl'}; this run names "
        f"{tmp_path / 'mine.jsonl'}, which holds none of them: pass the same one, or start "
        f"fresh to write {tmp_path / 'mine.jsonl'} (fresh=True, --fresh) (nothing was changed)"
    )
    again.close()
    assert _files(*before) == before

    same = EnhancedCheckpoint(tmp_path / "ck" / "A.json")
    same.attach_output(tmp_path / "out.jsonl")
    assert not same.start("A", total_items=3, output_file=tmp_path / "out.jsonl")
    same.close()


def test_an_output_that_is_a_directory_is_refused_naming_it(tmp_path: Path) -> None:
    """It was "CheckpointSaveError: cannot prepare journal data: Is a directory"."""
    (tmp_path / "data").mkdir()
    checkpoint = EnhancedCheckpoint(tmp_path / "ck" / "s.json")
    with pytest.raises(CheckpointError) as raised:
        checkpoint.attach_output(tmp_path / "data")
    assert str(raised.value) == (
        f"stage 's': output {tmp_path / 'data'} is a directory, not a JSON Lines file "
        "(nothing was changed)"
    )
    with pytest.raises(CheckpointError, match="is a directory"):
        checkpoint.start("s", total_items=1, output_file=tmp_path / "data")
    checkpoint.close()
    assert list((tmp_path / "data").iterdir()) == []
