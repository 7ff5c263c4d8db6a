"""A refused start writes nothing; a stage starting over validates its input before it cuts
(issue 13 items 1 and 2; reproductions from newcomer.md §2 items 1 and 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import (
    CheckpointStatus,
    EnhancedCheckpoint,
    InputChangedError,
    InputInvalidError,
)
from common.records import validate_records
from common.tracker import AsyncCheckpointTracker
from tests._demo_site import serving_demo_site
from tools.testing.crawl import DISCOVERY_OUTPUT, VALIDATION_OUTPUT

REPO_ROOT = Path(__file__).resolve().parent.parent


def _write_input(path: Path, count: int, *, tag: str = "") -> None:
    path.write_text("".join(f'{{"url": "https://site/{tag}{i}"}}\n' for i in range(count)))


def _run_stage(directory: Path, input_file: Path, output: Path, count: int) -> None:
    """A stage that writes one record per input line and completes."""
    cp = EnhancedCheckpoint(directory / "stage.json", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=count, input_file=input_file)
    for i in range(count):
        cp.update(processed=1, successful=1, index=i, record={"url": f"https://site/{i}"})
    cp.complete()
    cp.close()


def _paused_with_an_uncommitted_tail(directory: Path, input_file: Path, output: Path) -> bytes:
    """10 records committed and paused, then bytes the record does not commit (what a newer,
    lost checkpoint had committed): a resume would cut them, a refusal must not."""
    cp = EnhancedCheckpoint(directory / "stage.json", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=20, input_file=input_file)
    for i in range(10):
        cp.update(processed=1, successful=1, index=i, record={"url": f"https://site/{i}"})
    cp.pause()
    cp.close()
    with output.open("ab") as handle:
        handle.write(b'{"url": "https://site/10"}\n{"url": "https://site/11"}\n')
    return output.read_bytes()


def test_a_refused_resume_cuts_nothing(tmp_path: Path) -> None:
    input_file, output = tmp_path / "input.jsonl", tmp_path / "out.jsonl"
    _write_input(input_file, 20)
    before = _paused_with_an_uncommitted_tail(tmp_path / "checkpoints", input_file, output)
    record_before = (tmp_path / "checkpoints/stage.json").read_bytes()
    _write_input(input_file, 20, tag="changed-")

    cp = EnhancedCheckpoint(tmp_path / "checkpoints/stage.json")
    try:
        cp.attach_output(output)
        with pytest.raises(InputChangedError) as refused:
            cp.start(total_items=20, input_file=input_file)
    finally:
        cp.close()
    assert "\n" not in str(refused.value) and not str(refused.value).startswith("error")
    assert output.read_bytes() == before
    assert (tmp_path / "checkpoints/stage.json").read_bytes() == record_before


@pytest.mark.anyio
async def test_a_refused_tracker_resume_cuts_nothing(tmp_path: Path) -> None:
    input_file, output = tmp_path / "input.jsonl", tmp_path / "out.jsonl"
    _write_input(input_file, 20)
    before = _paused_with_an_uncommitted_tail(tmp_path / "checkpoints", input_file, output)
    _write_input(input_file, 20, tag="changed-")

    with pytest.raises(InputChangedError):
        async with AsyncCheckpointTracker(
            tmp_path / "checkpoints", "stage", input_file=input_file, output_file=output
        ) as tracker:
            tracker.start(total_items=20)
    assert output.read_bytes() == before


def test_a_forced_resume_cuts_the_uncommitted_tail(tmp_path: Path) -> None:
    """The cut itself still happens once the guards let the start through."""
    input_file, output = tmp_path / "input.jsonl", tmp_path / "out.jsonl"
    _write_input(input_file, 20)
    before = _paused_with_an_uncommitted_tail(tmp_path / "checkpoints", input_file, output)
    _write_input(input_file, 20, tag="changed-")
    cp = EnhancedCheckpoint(tmp_path / "checkpoints/stage.json")
    try:
        cp.attach_output(output)
        assert cp.start(total_items=20, input_file=input_file, force=True)
    finally:
        cp.close()
    assert output.read_bytes() == before[: before.index(b'{"url": "https://site/10"}')]


def _validator(path: Path) -> None:
    validate_records(path, kind="test")


def test_a_stage_starting_over_validates_its_input_before_it_cuts(tmp_path: Path) -> None:
    input_file, output = tmp_path / "input.jsonl", tmp_path / "out.jsonl"
    _write_input(input_file, 5)
    _run_stage(tmp_path / "checkpoints", input_file, output, 5)
    before = output.read_bytes()
    record_before = (tmp_path / "checkpoints/stage.json").read_bytes()
    lines = input_file.read_text().splitlines(keepends=True)
    lines[2] = "{not json\n"
    input_file.write_text("".join(lines))

    cp = EnhancedCheckpoint(tmp_path / "checkpoints/stage.json")
    try:
        cp.attach_output(output)
        with pytest.raises(InputInvalidError) as refused:
            cp.start(total_items=5, input_file=input_file, input_validator=_validator)
        assert cp.status is CheckpointStatus.COMPLETED
    finally:
        cp.close()
    message = str(refused.value)
    assert f"{input_file}:3: not a test record" in message and "\n" not in message
    assert output.read_bytes() == before
    assert (tmp_path / "checkpoints/stage.json").read_bytes() == record_before


def test_a_fresh_start_validates_before_it_cuts(tmp_path: Path) -> None:
    input_file, output = tmp_path / "input.jsonl", tmp_path / "out.jsonl"
    _write_input(input_file, 5)
    _run_stage(tmp_path / "checkpoints", input_file, output, 5)
    before = output.read_bytes()
    input_file.write_text('{"url": "https://site/0"}\n[1, 2]\n')
    cp = EnhancedCheckpoint(tmp_path / "checkpoints/stage.json")
    try:
        cp.attach_output(output)
        with pytest.raises(InputInvalidError, match=r"input\.jsonl:2: not a test record"):
            cp.start(input_file=input_file, fresh=True, input_validator=_validator)
    finally:
        cp.close()
    assert output.read_bytes() == before


# The validation stage, end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_site() -> Iterator[str]:
    with serving_demo_site(40, 5) as base_url:
        yield base_url


def _scrapy(spider: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", spider, *args]
    for name, value in {"DATA_DIR": data_dir, "CHECKPOINT_DIR": data_dir / "checkpoints"}.items():
        command += ["-s", f"{name}={value}"]
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_validation_over_a_bad_discovery_line_keeps_its_output(
    tmp_path: Path, demo_site: str
) -> None:
    """newcomer.md §2 item 1: a malformed line in stage 1's output used to truncate the
    completed validation output (58 -> 0 lines) before failing with a traceback."""
    discovered = _scrapy("discovery", tmp_path, "-a", f"start_url={demo_site}/")
    assert discovered.returncode == 0, discovered.stderr[-3000:]
    validated = _scrapy("validation", tmp_path)
    assert validated.returncode == 0, validated.stderr[-3000:]
    output = tmp_path / VALIDATION_OUTPUT
    before = output.read_bytes()
    assert before.count(b"\n") > 10

    discovery = tmp_path / DISCOVERY_OUTPUT
    lines = discovery.read_text().splitlines(keepends=True)
    lines[3] = '{"url": "https://torn\n'
    discovery.write_text("".join(lines))

    again = _scrapy("validation", tmp_path)
    assert again.returncode != 0
    assert output.read_bytes() == before
    naming = [line for line in again.stderr.splitlines() if f"{discovery}:4:" in line]
    assert len(naming) == 1, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    state = json.loads((tmp_path / "checkpoints/stage2_validation.json").read_text())
    assert state["status"] == "completed"
