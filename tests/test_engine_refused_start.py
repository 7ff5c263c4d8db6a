"""A refused start changes nothing: record, backup, history, outputs, journals.

A fresh start refused because another process held its output file used to empty the stage's
record first (the reset committed an empty record and a "before-fresh start requested"
snapshot, then the output's ``flock`` refused the truncation): the stage's progress was gone
though "nothing was changed". Every refusal of ``start()`` now comes before its first write.
Each test snapshots the checkpoint directory and the outputs before the refused start and
compares them, byte for byte, after it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from common import (
    AsyncCheckpointTracker,
    CheckpointLockedError,
    EnhancedCheckpoint,
    OutputConflictError,
)
from common.errors import (
    ConfigChangedError,
    InputChangedError,
    InputInvalidError,
    StoreMismatchError,
)
from common.stores.factory import select_store
from enrich.async_enrichment import STAGE_NAME
from tests._enrich_stage import run_enrich, write_stage2
from tests._live_writer import live_writer, release

CONFIG = {"depth": 1}

HOLDER = """
import sys, anyio
from common import AsyncCheckpointTracker

async def main() -> None:
    directory, stage, output = sys.argv[1:4]
    async with AsyncCheckpointTracker(
        directory, stage, output_file=output, fresh=True
    ) as tracker:
        tracker.start(total_items=2)
        tracker.update(processed=1, successful=1, index=0, record={"holder": 0})
        await tracker.save()
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)

anyio.run(main)
"""


@pytest.fixture
def holder() -> Iterator[Callable[[Path, str, Path], int]]:
    """Start a live process writing ``stage`` of ``directory`` into ``output`` (a tracker,
    as a user's script would, starting fresh: what the file held goes); returns its pid once
    it holds the output."""
    with contextlib.ExitStack() as stack:
        writers: list[subprocess.Popen[str]] = []

        def start(directory: Path, stage: str, output: Path) -> int:
            writer = stack.enter_context(live_writer(HOLDER, directory, stage, output))
            writers.append(writer)
            return writer.pid

        yield start
        for writer in writers:
            assert release(writer) == 0  # each holder finishes its stage normally


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every file under ``roots`` (a directory, or one file: None when missing), by path."""
    files: dict[str, bytes | None] = {}
    for root in roots:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    files[str(path)] = path.read_bytes()
        else:
            files[str(root)] = root.read_bytes() if root.exists() else None
    return files


def stage_files(directory: Path, stage: str) -> dict[str, bytes | None]:
    """:func:`snapshot` of ``stage``'s own files in ``directory`` (record, backup, lock,
    journals, history), leaving out the other stages'."""
    return {
        path: data
        for path, data in snapshot(directory).items()
        if Path(path).name.startswith(f"{stage}.") or Path(path).parent.name == stage
    }


def progressed_stage(
    directory: Path, stage: str, output: Path, input_file: Path, *, complete: bool = False
) -> None:
    """``stage`` with 3 items done and their records in ``output``, paused (or completed)."""
    checkpoint = EnhancedCheckpoint(directory / f"{stage}.json")
    checkpoint.attach_output(output)
    checkpoint.start(stage, total_items=3, input_file=input_file, config=CONFIG)
    for index in range(3):
        checkpoint.update(processed=1, successful=1, index=index, record={"item": index})
    checkpoint.update(processed=1, failed=1, failed_record={"item": 9, "error": "x"})
    if complete:
        checkpoint.complete()
    else:
        checkpoint.pause()
    checkpoint.close()


@pytest.fixture
def stage_b(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Stage B paused in ``ck`` after 3 items: (checkpoint dir, output, input)."""
    input_file = tmp_path / "input.jsonl"
    input_file.write_text('{"url": "a"}\n{"url": "b"}\n{"url": "c"}\n')
    progressed_stage(tmp_path / "ck", "B", tmp_path / "out.jsonl", input_file)
    return tmp_path / "ck", tmp_path / "out.jsonl", input_file


def outputs_of(output: Path) -> tuple[Path, Path]:
    return output, output.with_name(output.stem + ".failed.jsonl")


def assert_stage_b_intact(directory: Path) -> None:
    record = json.loads((directory / "B.json").read_text())
    assert record["status"] == "paused"
    assert record["progress"]["processed_items"] == 4
    assert not any("before-" in e.name for e in (directory / "history" / "B").iterdir())


# The output's flock: another process writes the file --------------------------------------------


def test_a_fresh_start_refused_by_another_process_writing_its_output_changes_nothing(
    tmp_path: Path, stage_b: tuple[Path, Path, Path], holder: Callable[[Path, str, Path], int]
) -> None:
    directory, output, input_file = stage_b
    # Stage A, in another checkpoint directory (no record there names B's output: only the
    # lock can tell), writes B's output while B is paused.
    pid = holder(tmp_path / "ckA", "A", output)
    before = snapshot(directory, *outputs_of(output))

    checkpoint = EnhancedCheckpoint(directory / "B.json")
    checkpoint.attach_output(output)
    with pytest.raises(CheckpointLockedError) as raised:
        checkpoint.start(total_items=3, input_file=input_file, config=CONFIG, fresh=True)
    checkpoint.close()
    assert raised.value.holder_pid == pid
    assert f"process {pid}" in str(raised.value) and "nothing was changed" in str(raised.value)
    assert snapshot(directory, *outputs_of(output)) == before
    assert_stage_b_intact(directory)


def test_a_fresh_start_on_an_output_a_live_stage_of_its_directory_writes_changes_nothing(
    tmp_path: Path, stage_b: tuple[Path, Path, Path], holder: Callable[[Path, str, Path], int]
) -> None:
    directory, output, input_file = stage_b
    shared = tmp_path / "shared.jsonl"
    holder(directory, "A", shared)  # A runs in B's own directory; B is pointed at its file
    before = stage_files(directory, "B") | snapshot(*outputs_of(output), *outputs_of(shared))

    checkpoint = EnhancedCheckpoint(directory / "B.json")
    with pytest.raises(OutputConflictError, match="stage 'A'"):
        checkpoint.attach_output(shared)
        checkpoint.start(total_items=3, input_file=input_file, config=CONFIG, fresh=True)
    checkpoint.close()
    after = stage_files(directory, "B") | snapshot(*outputs_of(output), *outputs_of(shared))
    assert after == before
    assert_stage_b_intact(directory)


def test_a_tracker_fresh_start_refused_by_another_process_changes_nothing(
    tmp_path: Path, stage_b: tuple[Path, Path, Path], holder: Callable[[Path, str, Path], int]
) -> None:
    directory, output, input_file = stage_b
    pid = holder(tmp_path / "ckA", "A", output)
    before = snapshot(directory, *outputs_of(output))

    async def fresh_run() -> None:
        async with AsyncCheckpointTracker(
            directory, "B", input_file=input_file, config=CONFIG, output_file=output, fresh=True
        ) as tracker:
            tracker.start(total_items=3)

    with pytest.raises(CheckpointLockedError, match=f"process {pid}"):
        anyio.run(fresh_run)
    assert snapshot(directory, *outputs_of(output)) == before
    assert_stage_b_intact(directory)


def test_restarting_a_completed_stage_whose_input_changed_is_refused_changing_nothing(
    tmp_path: Path, holder: Callable[[Path, str, Path], int]
) -> None:
    input_file = tmp_path / "input.jsonl"
    input_file.write_text('{"url": "a"}\n')
    directory, output = tmp_path / "ck", tmp_path / "out.jsonl"
    progressed_stage(directory, "B", output, input_file, complete=True)
    input_file.write_text('{"url": "a"}\n{"url": "new"}\n')  # starts over next time
    holder(tmp_path / "ckA", "A", output)
    before = snapshot(directory, *outputs_of(output))

    checkpoint = EnhancedCheckpoint(directory / "B.json")
    checkpoint.attach_output(output)
    with pytest.raises(CheckpointLockedError):
        checkpoint.start(total_items=3, input_file=input_file, config=CONFIG)
    assert checkpoint.status.value == "completed"
    checkpoint.close()
    assert snapshot(directory, *outputs_of(output)) == before


def test_a_resume_refused_by_a_held_sidecar_cuts_nothing_from_the_output(
    tmp_path: Path, stage_b: tuple[Path, Path, Path], holder: Callable[[Path, str, Path], int]
) -> None:
    directory, output, input_file = stage_b
    with output.open("ab") as tail:  # a crashed run's records, written after its last save
        tail.write(b'{"item":3}\n')
    _, sidecar = outputs_of(output)
    holder(tmp_path / "ckA", "A", sidecar)  # another stage writes B's sidecar as its output
    before = snapshot(directory, *outputs_of(output))

    checkpoint = EnhancedCheckpoint(directory / "B.json")
    checkpoint.attach_output(output)
    with pytest.raises(CheckpointLockedError, match=r"out\.failed\.jsonl is being written"):
        checkpoint.start(total_items=3, input_file=input_file, config=CONFIG)
    checkpoint.close()
    assert snapshot(directory, *outputs_of(output)) == before  # the tail is still there


def test_python_m_enrich_fresh_refused_by_another_process_changes_nothing(
    tmp_path: Path, holder: Callable[[Path, str, Path], int]
) -> None:
    write_stage2(tmp_path, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    directory = tmp_path / "checkpoints"
    output = tmp_path / "processed/stage03/enrichment_output.jsonl"
    input_file = tmp_path / "processed/stage02/validation_output.jsonl"
    progressed_stage(directory, STAGE_NAME, output, input_file)
    pid = holder(tmp_path / "ckA", "A", output)
    before = snapshot(directory, *outputs_of(output))

    result = run_enrich("--data-dir", str(tmp_path), "--fresh")
    assert result.returncode == 1, result.stderr
    assert f"process {pid}" in result.stderr and "nothing was changed" in result.stderr
    assert snapshot(directory, *outputs_of(output)) == before


# The stage's own lock ---------------------------------------------------------------------------


def test_a_fresh_start_refused_by_the_stage_lock_changes_nothing(
    tmp_path: Path, holder: Callable[[Path, str, Path], int]
) -> None:
    directory = tmp_path / "ck"
    pid = holder(directory, "B", tmp_path / "out.jsonl")  # B itself is running
    before = snapshot(directory, *outputs_of(tmp_path / "out.jsonl"))
    checkpoint = EnhancedCheckpoint(directory / "B.json")
    checkpoint.attach_output(tmp_path / "out.jsonl")
    with pytest.raises(CheckpointLockedError, match=f"stage 'B' is locked by process {pid}"):
        checkpoint.start(total_items=3, fresh=True)
    checkpoint.close()
    assert snapshot(directory, *outputs_of(tmp_path / "out.jsonl")) == before


# The guards ---------------------------------------------------------------------------------------


def test_a_fresh_start_naming_an_output_another_stage_records_changes_nothing(
    tmp_path: Path, stage_b: tuple[Path, Path, Path]
) -> None:
    directory, output, input_file = stage_b
    other = tmp_path / "other.jsonl"
    progressed_stage(directory, "A", other, input_file, complete=True)
    before = snapshot(directory, *outputs_of(output), *outputs_of(other))
    checkpoint = EnhancedCheckpoint(directory / "B.json")  # an output it writes itself
    with pytest.raises(OutputConflictError, match="stage 'A'"):
        checkpoint.start(total_items=3, output_file=other, fresh=True)
    checkpoint.close()
    assert snapshot(directory, *outputs_of(output), *outputs_of(other)) == before
    assert_stage_b_intact(directory)


@pytest.mark.parametrize("change", ["input", "config", "output", "invalid-input"])
def test_every_refused_resume_changes_nothing(
    tmp_path: Path, stage_b: tuple[Path, Path, Path], change: str
) -> None:
    directory, output, input_file = stage_b
    with output.open("ab") as tail:  # uncommitted bytes a resume would cut
        tail.write(b'{"item":3}\n')
    config, named_output, fresh = CONFIG, output, False
    validator = None
    expected: type[Exception]
    if change == "input":
        input_file.write_text('{"url": "changed"}\n')
        expected = InputChangedError
    elif change == "config":
        config, expected = {"depth": 2}, ConfigChangedError
    elif change == "output":
        named_output, expected = tmp_path / "elsewhere.jsonl", OutputConflictError
    else:

        def validator(path: Path) -> None:
            raise ValueError(f"{path}:2: not JSON")

        fresh, expected = True, InputInvalidError
    before = snapshot(directory, *outputs_of(output), *outputs_of(named_output))
    checkpoint = EnhancedCheckpoint(directory / "B.json")
    checkpoint.attach_output(named_output)
    with pytest.raises(expected, match=r"nothing was changed|cannot resume|the checkpoint.s"):
        checkpoint.start(
            total_items=3,
            input_file=input_file,
            config=config,
            fresh=fresh,
            input_validator=validator,
        )
    checkpoint.close()
    assert snapshot(directory, *outputs_of(output), *outputs_of(named_output)) == before
    assert_stage_b_intact(directory)


def test_a_store_mismatch_is_refused_changing_nothing(
    tmp_path: Path, stage_b: tuple[Path, Path, Path]
) -> None:
    directory, output, _ = stage_b
    before = snapshot(directory, *outputs_of(output))
    with pytest.raises(StoreMismatchError, match="nothing was changed"):
        select_store("sqlite", directory, fresh=False, restarting=["B"])
    with pytest.raises(StoreMismatchError, match="would also forget"):
        select_store("sqlite", directory, fresh=True, restarting=["A"])
    assert snapshot(directory, *outputs_of(output)) == before
