"""A data dir moved to another place resumes from its checkpoint (issue 16 item 5).

Checkpoints record the stage's input and output relative to the data dir (the checkpoint
directory's parent): a paused stage moved elsewhere resumes from the paths it recorded, to the same
output as a run never moved, and ``checkpoint-manager show`` finds its input unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import EnhancedCheckpoint
from common.stores import JsonFileStore

ROOT = Path(__file__).resolve().parents[1]
STAGE = "stage2_validation"
TOTAL = 40
PAUSE_AFTER = 17


def _make_data_dir(data: Path) -> Path:
    source = data / "processed" / "stage01" / "discovery_output.jsonl"
    source.parent.mkdir(parents=True)
    source.write_text(
        "".join(json.dumps({"url": f"https://site/{i}"}) + "\n" for i in range(TOTAL))
    )
    return source


def _open(data: Path, store: str) -> EnhancedCheckpoint:
    return EnhancedCheckpoint(data / "checkpoints" / f"{STAGE}.json", store=store)


def _process(cp: EnhancedCheckpoint, source: Path, stop_after: int | None) -> None:
    """Process the input's lines in order; pause after ``stop_after`` of them."""
    lines = source.read_text().splitlines()
    done_now = 0
    for i, line in enumerate(lines):
        if cp.should_skip(i):
            continue
        url = json.loads(line)["url"]
        cp.update(processed=1, successful=1, last_item=url, index=i, record={"url": url, "i": i})
        done_now += 1
        if stop_after is not None and done_now == stop_after:
            cp.pause()
            return
    cp.complete()


def _first_run(data: Path, store: str, stop_after: int | None) -> None:
    source = _make_data_dir(data)
    cp = _open(data, store)
    try:
        cp.attach_output(data / "processed" / "stage02" / "validation_output.jsonl")
        cp.start(STAGE, total_items=TOTAL, input_file=source)
        _process(cp, source, stop_after)
    finally:
        cp.close()


def _show(checkpoint_dir: Path, store: str) -> dict[str, object]:
    result = subprocess.run(
        [
            sys.executable,
            "tools/checkpoint_manager_cli.py",
            "--checkpoint-dir",
            str(checkpoint_dir),
            "--store",
            store,
            "show",
            STAGE,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("store", ["json", "sqlite"])
def test_moved_data_dir_resumes_from_recorded_paths_to_identical_output(
    tmp_path: Path, store: str
) -> None:
    reference = tmp_path / "reference"
    _first_run(reference, store, stop_after=None)

    before, after = tmp_path / "before" / "data", tmp_path / "elsewhere" / "moved-data"
    _first_run(before, store, stop_after=PAUSE_AFTER)
    after.parent.mkdir()
    os.rename(before, after)
    assert not before.exists()

    cp = _open(after, store)
    try:
        assert cp.status.value == "paused"
        # The recorded paths point into the data dir where it is now, not where it was.
        source = after / "processed" / "stage01" / "discovery_output.jsonl"
        output = after / "processed" / "stage02" / "validation_output.jsonl"
        assert cp.state.input_file == str(source)
        assert cp.state.output_file == str(output)
        assert cp.validate_input_file(cp.state.input_file) == (True, "input file unchanged")
        cp.attach_output(cp.state.output_file)
        cp.start(STAGE, input_file=cp.state.input_file)
        _process(cp, Path(cp.state.input_file), stop_after=None)
        assert cp.status.value == "completed"
        assert cp.state.progress.processed_items == TOTAL
    finally:
        cp.close()
    expected = (reference / "processed" / "stage02" / "validation_output.jsonl").read_bytes()
    assert output.read_bytes() == expected


@pytest.mark.parametrize("store", ["json", "sqlite"])
def test_show_on_a_moved_data_dir_finds_the_input_unchanged(tmp_path: Path, store: str) -> None:
    before, after = tmp_path / "a" / "data", tmp_path / "b" / "data"
    _first_run(before, store, stop_after=PAUSE_AFTER)
    after.parent.mkdir()
    os.rename(before, after)

    shown = _show(after / "checkpoints", store)
    validation = shown["input_validation"]
    assert isinstance(validation, dict)
    assert validation["input_file"] == str(after / "processed/stage01/discovery_output.jsonl")
    assert validation["checked"] is True
    assert validation["unchanged"] is True, validation
    assert shown["output_file"] == str(after / "processed/stage02/validation_output.jsonl")


def test_absolute_paths_in_older_files_still_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = _make_data_dir(data)
    outside = tmp_path / "outside.jsonl"
    cp = _open(data, "json")
    try:
        cp.start(STAGE, total_items=TOTAL, input_file=source, output_file=outside)
        cp.pause()
    finally:
        cp.close()
    main = data / "checkpoints" / f"{STAGE}.json"
    record = json.loads(main.read_text())
    # A path outside the data dir stays absolute: nothing moves it with the data dir.
    assert record["output_file"] == str(outside)
    assert record["input_file"] == "processed/stage01/discovery_output.jsonl"
    record["input_file"] = str(source)  # as written before paths were relative
    main.write_text(json.dumps(record))

    cp = _open(data, "json")
    try:
        assert cp.state.input_file == str(source)
        assert cp.state.output_file == str(outside)
        assert cp.validate_input_file(cp.state.input_file)[0] is True
    finally:
        cp.close()


def test_older_paths_relative_to_the_working_directory_still_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, a path relative to the run's working directory was stored as given.
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    _make_data_dir(data)
    store = JsonFileStore(data / "checkpoints")
    store.save(STAGE, {"stage": STAGE, "status": "paused"})
    main = data / "checkpoints" / f"{STAGE}.json"
    record = json.loads(main.read_text())
    record["input_file"] = "data/processed/stage01/discovery_output.jsonl"
    main.write_text(json.dumps(record))

    cp = _open(data, "json")
    try:
        assert cp.state.input_file == str(data / "processed/stage01/discovery_output.jsonl")
    finally:
        cp.close()
