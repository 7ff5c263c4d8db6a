"""The saved file: seed fields, migration from seed 003, corrupt files, backup, layout, names."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common import (
    AsyncCheckpointTracker,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointSchemaError,
    CheckpointStatus,
    EnhancedCheckpoint,
    InvalidStageNameError,
    JsonFileStore,
    UnifiedCheckpointManager,
)
from common.state import SCHEMA_VERSION, utc_iso
from common.stores import validate_stage_name
from tests.conftest import FakeClock, MakeCheckpoint

SEED_FIELDS = [
    "stage",
    "status",
    "progress",
    "last_processed_item",
    "last_processed_index",
    "batch_id",
    "input_file",
    "input_file_hash",
    "output_file",
    "created_at",
    "updated_at",
    "error_message",
    "error_count",
    "metadata",
]
SEED_PROGRESS_FIELDS = [
    "total_items",
    "processed_items",
    "successful_items",
    "failed_items",
    "skipped_items",
    "start_time",
    "last_update_time",
    "estimated_completion_time",
]

# Verbatim from seed 003, "Checkpoint File Format".
SEED_003_CHECKPOINT = """\
{
  "stage": "stage1_discovery",
  "status": "running",
  "progress": {
    "total_items": 10000,
    "processed_items": 5000,
    "successful_items": 4910,
    "failed_items": 90,
    "skipped_items": 0,
    "start_time": 1696258845.123,
    "last_update_time": 1696259045.456,
    "estimated_completion_time": 118.5
  },
  "last_processed_item": "https://uconn.edu/page5000",
  "last_processed_index": 5000,
  "batch_id": 5,
  "input_file": "data/processed/stage01/discovery_output.jsonl",
  "input_file_hash": "abc123...",
  "output_file": "data/processed/stage02/validation_output.jsonl",
  "created_at": "2025-10-02T12:00:00",
  "updated_at": "2025-10-02T12:30:45",
  "error_message": null,
  "error_count": 0,
  "metadata": {}
}
"""


def iso_z(timestamp: float) -> str:
    """How schema 3 writes a progress time: ISO 8601 UTC, microseconds, a Z."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_every_time_in_the_json_is_iso_utc_with_z(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint("times", clock=fake_clock)
    cp.start(total_items=10)
    cp.update(processed=1, failed=1, index=0)
    cp.record_error("boom")
    cp.save()
    data = _read(cp.path)
    times = [
        data["created_at"],
        data["updated_at"],
        data["last_error_time"],
        data["recent_errors"][0]["time"],
        data["progress"]["start_time"],
        data["progress"]["last_update_time"],
    ]
    for value in times:
        assert isinstance(value, str) and value.endswith("Z"), value
        assert datetime.fromisoformat(value).tzinfo is not None
    again = EnhancedCheckpoint(cp.path)  # read back: the same instants
    try:
        assert again.state.progress.start_time == pytest.approx(fake_clock(), abs=1e-6)
    finally:
        again.close()


SCHEMA_2_CHECKPOINT = {
    "stage": "old2",
    "status": "paused",
    "progress": {
        "total_items": 10,
        "processed_items": 4,
        "successful_items": 4,
        "failed_items": 0,
        "skipped_items": 0,
        "start_time": 1750000000.25,
        "last_update_time": 1750000060.5,
        "estimated_completion_time": 90.0,
        "active_seconds": 60.0,
    },
    "last_processed_item": "https://site/3",
    "last_processed_index": 3,
    "batch_id": 0,
    "input_file": None,
    "input_file_hash": None,
    "output_file": None,
    "created_at": "2025-06-15T15:06:40",
    "updated_at": "2025-06-15T15:07:40",
    "error_message": "ValueError: x",
    "error_count": 1,
    "metadata": {},
    "schema_version": 2,
    "last_error_time": "2025-06-15T15:07:00",
    "recent_errors": [{"time": "2025-06-15T15:07:00", "message": "ValueError: x"}],
    "completion": {"watermark": 4, "done_above": [], "prefix_item": "https://site/3"},
    "journals": {},
    "keys_done": 0,
    "run_count": 1,
    "recoveries": 0,
}


def test_a_schema_2_file_loads_and_is_written_back_as_3(checkpoint_dir: Path) -> None:
    checkpoint_dir.mkdir(parents=True)
    path = checkpoint_dir / "old2.json"
    original = json.dumps(SCHEMA_2_CHECKPOINT)
    path.write_text(original)
    cp = EnhancedCheckpoint(path)
    try:
        assert cp.migrated is True
        state = cp.state
        assert state.progress.start_time == 1750000000.25
        assert state.progress.last_update_time == 1750000060.5
        assert state.created_at == "2025-06-15T15:06:40Z"
        assert state.last_error_time == "2025-06-15T15:07:00Z"
        assert state.recent_errors[0].time == "2025-06-15T15:07:00Z"
        assert cp.should_skip(3) and not cp.should_skip(4)
        assert path.read_text() == original  # loading changed nothing
        cp.save(force=True)
    finally:
        cp.close()
    data = _read(path)
    assert data["schema_version"] == 3
    assert data["progress"]["start_time"] == "2025-06-15T15:06:40.250000Z"
    assert data["created_at"] == "2025-06-15T15:06:40Z"


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Fields -----------------------------------------------------------------------------------------


def test_saved_file_has_every_seed_field_and_schema_version(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock, tmp_path: Path
) -> None:
    source = tmp_path / "input.jsonl"
    source.write_text('{"url": "https://a"}\n{"url": "https://b"}\n')
    cp = make_checkpoint("fields", clock=fake_clock)
    start = fake_clock()
    cp.start("fields", total_items=2, input_file=source, output_file=tmp_path / "out.jsonl")
    fake_clock.advance(4)
    cp.update(processed=1, successful=1, last_item="https://a", index=0)
    cp.save()
    data = _read(cp.path)
    for name in [*SEED_FIELDS, "schema_version"]:
        assert name in data, name
    for name in SEED_PROGRESS_FIELDS:
        assert name in data["progress"], name
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert data["stage"] == "fields"
    assert data["status"] == "running"
    assert data["progress"]["total_items"] == 2
    assert data["progress"]["processed_items"] == 1
    assert data["progress"]["successful_items"] == 1
    assert data["progress"]["failed_items"] == 0
    assert data["progress"]["skipped_items"] == 0
    assert data["progress"]["start_time"] == iso_z(start)
    assert data["progress"]["last_update_time"] == iso_z(start + 4)
    # 1 item in 4 s, 1 left: 4 s to go.
    assert data["progress"]["estimated_completion_time"] == pytest.approx(4.0)
    assert data["last_processed_item"] == "https://a"
    assert data["last_processed_index"] == 0
    assert data["batch_id"] == 0
    # Paths under the data dir (the checkpoint directory's parent) are stored relative to it;
    # the state in memory holds them absolute.
    assert data["input_file"] == "input.jsonl"
    assert cp.state.input_file == str(source)
    assert data["input_file_hash"].startswith("sha256:")
    assert data["output_file"] == "out.jsonl"
    assert data["created_at"] == utc_iso(start)
    assert data["updated_at"] == utc_iso(start + 4)
    assert data["error_message"] is None
    assert data["error_count"] == 0
    assert data["metadata"] == {}


def test_metadata_round_trips(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("meta")
    cp.start("meta", total_items=1)
    cp.state.metadata = {"spider_name": "discovery", "nested": {"depth": 3, "tags": ["a", "b"]}}
    assert cp.save(force=True) is True
    assert _read(cp.path)["metadata"] == {
        "spider_name": "discovery",
        "nested": {"depth": 3, "tags": ["a", "b"]},
    }
    cp.pause()
    cp.close()
    again = EnhancedCheckpoint(cp.path)
    try:
        assert again.state.metadata == {
            "spider_name": "discovery",
            "nested": {"depth": 3, "tags": ["a", "b"]},
        }
    finally:
        again.close()


def test_save_without_changes_writes_nothing_unless_forced(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("idle")
    cp.start(total_items=1)
    cp.flush()
    assert cp.save() is False
    assert cp.save(force=True) is True


class _GatedStore(JsonFileStore):
    """Holds every save until ``release`` is set, to look at a save in flight."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        import threading

        self.release = threading.Event()

    def save(self, stage: str, record: dict[str, Any]) -> None:
        assert self.release.wait(10)
        super().save(stage, record)


def test_a_save_is_a_snapshot_of_metadata(checkpoint_dir: Path) -> None:
    store = _GatedStore(checkpoint_dir)
    cp = EnhancedCheckpoint("gated", store=store)
    try:
        cp.start(total_items=1)  # its save waits at the gate
        cp.state.metadata["changed"] = "after the snapshot"
        store.release.set()
        cp.flush()
        assert _read(checkpoint_dir / "gated.json")["metadata"] == {}
    finally:
        store.release.set()
        cp.close()


# Migration ----------------------------------------------------------------------------------------


def test_seed_003_file_is_migrated(
    checkpoint_dir: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seed's paths are relative to its run's working directory, and one that names an
    # existing file there is kept (common/datapaths.py): run from an empty directory, not from
    # a repository root where the quick start left data/processed/stage01/.
    monkeypatch.chdir(checkpoint_dir.parent)
    checkpoint_dir.mkdir()
    path = checkpoint_dir / "stage1_discovery.json"
    path.write_text(SEED_003_CHECKPOINT)
    cp = make_checkpoint("stage1_discovery")
    assert cp.migrated is True
    assert cp.status is CheckpointStatus.RECOVERING  # it said running: the seed's run crashed
    assert cp.state.completion.watermark == 5001
    assert cp.resume_point == (5001, "https://uconn.edu/page5000")
    assert cp.should_skip(5000) and not cp.should_skip(5001)
    progress = cp.state.progress
    assert (progress.total_items, progress.processed_items) == (10000, 5000)
    assert (progress.successful_items, progress.failed_items) == (4910, 90)
    assert progress.start_time == 1696258845.123
    assert cp.state.batch_id == 5
    assert cp.state.input_file_hash == "abc123..."
    assert path.read_text() == SEED_003_CHECKPOINT  # loading changed nothing

    cp.save(force=True)
    data = _read(path)
    assert data["schema_version"] == 3
    original = json.loads(SEED_003_CHECKPOINT)
    for name in SEED_FIELDS:
        if name == "created_at":  # the one time encoding: ISO 8601 UTC with a Z
            assert data[name] == original[name] + "Z"
        elif name not in ("status", "updated_at", "progress"):
            assert data[name] == original[name], name
    for name in SEED_PROGRESS_FIELDS:
        if name in ("start_time", "last_update_time"):
            assert data["progress"][name] == iso_z(original["progress"][name]), name
        elif name != "estimated_completion_time":
            assert data["progress"][name] == original["progress"][name], name
    assert data["completion"]["watermark"] == 5001
    cp.close()
    again = EnhancedCheckpoint(path)
    try:
        assert again.migrated is False
        assert again.should_skip(5000) and not again.should_skip(5001)
    finally:
        again.close()


# Corrupt files --------------------------------------------------------------------------------------


def _valid_record(checkpoint_dir: Path) -> dict[str, Any]:
    cp = EnhancedCheckpoint(checkpoint_dir / "bad.json")
    cp.start(total_items=20)
    for i in range(12):
        cp.update(processed=1, successful=1, index=i)
    cp.pause()
    cp.close()
    record = _read(checkpoint_dir / "bad.json")
    for leftover in checkpoint_dir.glob("bad*.json"):
        leftover.unlink()
    return record


def _mutated(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], bytes]:
    def build(record: dict[str, Any]) -> bytes:
        change(record)
        return json.dumps(record).encode()

    return build


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for name in parents:
            target = target[name]
        target[last] = value

    return change


CORRUPT_CASES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "garbage": lambda _: b"\x00\xff\xfe\x80garbage\x9c",
    "empty": lambda _: b"",
    "whitespace": lambda _: b"  \n",
    "truncated": lambda record: json.dumps(record).encode()[:57],
    "json_array": lambda record: json.dumps([record]).encode(),
    "json_string": lambda _: b'"stage"',
    "status_int": _mutated(_set("status", 5)),
    "progress_string": _mutated(_set("progress", "lots")),
    "unknown_status": _mutated(_set("status", "exploded")),
    "future_schema": _mutated(_set("schema_version", 99)),
    "negative_processed": _mutated(_set("progress.processed_items", -1)),
    "negative_error_count": _mutated(_set("error_count", -3)),
    "success_plus_failed_exceeds_processed": _mutated(
        lambda r: r["progress"].update(processed_items=12, successful_items=10, failed_items=5)
    ),
    "count_is_float": _mutated(_set("progress.total_items", 2.5)),
    "count_is_bool": _mutated(_set("progress.total_items", True)),
    "other_stage": _mutated(_set("stage", "someone_else")),
    "missing_stage": _mutated(lambda r: r.pop("stage")),
    "done_above_not_ints": _mutated(_set("completion.done_above", ["x"])),
    "metadata_list": _mutated(_set("metadata", [1, 2])),
    "start_time_nan_string": _mutated(_set("progress.start_time", "yesterday")),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
def test_damaged_file_raises_naming_the_file_and_stays_untouched(
    case: str, checkpoint_dir: Path
) -> None:
    record = _valid_record(checkpoint_dir)
    path = checkpoint_dir / "bad.json"
    data = CORRUPT_CASES[case](record)
    path.write_bytes(data)
    before = sorted(p.name for p in checkpoint_dir.iterdir())
    with pytest.raises(CheckpointCorruptError) as info:
        EnhancedCheckpoint(path)
    assert str(path) in str(info.value)
    assert info.value.stage == "bad"
    assert path.read_bytes() == data
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == before


@pytest.mark.parametrize("case", ["json_array", "status_int", "future_schema", "unknown_status"])
def test_wrong_schema_is_reported_by_the_parser_as_schema_error(
    case: str, checkpoint_dir: Path
) -> None:
    from common.state import parse_checkpoint

    record = _valid_record(checkpoint_dir)
    data = json.loads(CORRUPT_CASES[case](record))
    path = checkpoint_dir / "bad.json"
    with pytest.raises(CheckpointSchemaError, match=re.escape(str(path))):
        parse_checkpoint(data, path=path, stage="bad")


def test_future_schema_message_says_newer_version(checkpoint_dir: Path) -> None:
    record = _valid_record(checkpoint_dir)
    (checkpoint_dir / "bad.json").write_bytes(CORRUPT_CASES["future_schema"](record))
    with pytest.raises(CheckpointCorruptError, match=r"newer version \(schema 99"):
        EnhancedCheckpoint(checkpoint_dir / "bad.json")


def test_future_schema_surfaces_as_schema_error(checkpoint_dir: Path) -> None:
    record = _valid_record(checkpoint_dir)
    (checkpoint_dir / "bad.json").write_bytes(CORRUPT_CASES["future_schema"](record))
    with pytest.raises(CheckpointSchemaError):
        EnhancedCheckpoint(checkpoint_dir / "bad.json")


# Backup --------------------------------------------------------------------------------------------


def _two_saves(checkpoint_dir: Path, stage: str = "twice") -> EnhancedCheckpoint:
    cp = EnhancedCheckpoint(checkpoint_dir / f"{stage}.json", auto_save_interval=1000)
    cp.start(total_items=10)
    cp.flush()
    cp.update(processed=1, successful=1, index=0)
    cp.save()
    return cp


def test_atomic_save_layout_after_two_saves(checkpoint_dir: Path) -> None:
    cp = _two_saves(checkpoint_dir)
    try:
        main = _read(checkpoint_dir / "twice.json")
        backup = _read(checkpoint_dir / "twice.backup.json")
        assert main["progress"]["processed_items"] == 1
        assert backup["progress"]["processed_items"] == 0
        assert main["status"] == backup["status"] == "running"
        names = {p.name for p in checkpoint_dir.iterdir()}
        assert ".twice.tmp.json" not in names
        assert not [n for n in names if n.endswith((".tmp", ".link")) or ".tmp." in n]
        assert names >= {"twice.json", "twice.backup.json", "twice.lock"}
    finally:
        cp.close()


def _save_one_more(cp: EnhancedCheckpoint, index: int) -> None:
    cp.update(processed=1, successful=1, index=index)
    cp.save()


def test_record_and_backup_take_turns_on_two_inodes(checkpoint_dir: Path) -> None:
    """Each save rewrites the oldest backup's inode as its temporary file instead of creating
    one and freeing another (a third of a save's CPU); the backup is still the previous file."""
    cp = _two_saves(checkpoint_dir)
    main, backup = checkpoint_dir / "twice.json", checkpoint_dir / "twice.backup.json"
    try:
        inodes = set()
        for index in range(1, 6):
            before = main.stat().st_ino
            _save_one_more(cp, index)
            assert backup.stat().st_ino == before  # the previous file, linked, not copied
            assert _read(main)["progress"]["processed_items"] == index + 1
            assert _read(backup)["progress"]["processed_items"] == index
            assert stat.S_IMODE(main.stat().st_mode) == 0o600
            inodes |= {main.stat().st_ino, backup.stat().st_ino}
        assert len(inodes) == 2
        assert not (checkpoint_dir / ".twice.tmp.json").exists()
    finally:
        cp.close()


def test_a_backup_with_another_name_is_replaced_never_written_through(
    checkpoint_dir: Path,
) -> None:
    cp = _two_saves(checkpoint_dir)
    backup = checkpoint_dir / "twice.backup.json"
    victim = checkpoint_dir.parent / "victim.json"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    try:
        backup.unlink()
        os.link(victim, backup)  # planted: the backup is another file's second name
        _save_one_more(cp, 1)
        assert victim.read_text() == "precious\n"
        assert _read(backup)["progress"]["processed_items"] == 1
        assert _read(checkpoint_dir / "twice.json")["progress"]["processed_items"] == 2
    finally:
        cp.close()


def test_a_backup_that_is_the_current_file_is_not_rewritten(checkpoint_dir: Path) -> None:
    """A save killed between the backup's link and its replace leaves the backup a second name
    of the current file; the next save must not rewrite that file in place."""
    cp = _two_saves(checkpoint_dir)
    main, backup = checkpoint_dir / "twice.json", checkpoint_dir / "twice.backup.json"
    try:
        backup.unlink()
        os.link(main, backup)
        current = main.read_bytes()
        _save_one_more(cp, 1)
        assert backup.read_bytes() == current
        assert _read(main)["progress"]["processed_items"] == 2
        assert main.stat().st_ino != backup.stat().st_ino
        assert not (checkpoint_dir / ".twice.tmp.json").exists()
    finally:
        cp.close()


def test_files_are_0600_and_created_directory_0700(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "checkpoints"
    output = tmp_path / "out" / "records.jsonl"
    cp = EnhancedCheckpoint(directory / "modes.json", auto_save_interval=1000)
    try:
        cp.attach_output(output)
        cp.start(total_items=2)
        cp.update(processed=1, successful=1, index=0, record={"url": "u0"}, key="u0")
        cp.save()
        cp.update(processed=1, failed=1, index=1, failed_record={"url": "u1"})
        cp.save()
        assert _mode(directory) == 0o700
        for path in [
            directory / "modes.json",
            directory / "modes.backup.json",
            directory / "modes.lock",
            directory / "modes.keys.jsonl",
            output,
            output.with_name("records.failed.jsonl"),
            *(directory / "history" / "modes").glob("*.json"),
        ]:
            assert path.exists(), path
            assert _mode(path) == 0o600, path
        assert _mode(directory / "history" / "modes") == 0o700
    finally:
        cp.close()


def test_existing_wide_file_is_narrowed_on_save(checkpoint_dir: Path) -> None:
    cp = _two_saves(checkpoint_dir)
    try:
        (checkpoint_dir / "twice.json").chmod(0o644)
        cp.update(processed=1, successful=1, index=1)
        cp.save()
        assert _mode(checkpoint_dir / "twice.json") == 0o600
    finally:
        cp.close()


def test_damaged_main_loads_from_backup_and_is_moved_aside(
    checkpoint_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cp = _two_saves(checkpoint_dir)
    cp.pause()  # main: paused, 1 done; backup: running, 1 done
    cp.close()
    main = checkpoint_dir / "twice.json"
    backup = checkpoint_dir / "twice.backup.json"
    good_backup = backup.read_bytes()
    garbage = b'{"stage": "twice", "status": "runn'
    main.write_bytes(garbage)

    caplog.set_level(logging.INFO)
    restored = EnhancedCheckpoint(main)
    try:
        assert restored.restored_from_backup is True
        assert restored.state.progress.processed_items == 1
        assert any(
            "restored from backup" in r.getMessage() and r.levelno >= logging.WARNING
            for r in caplog.records
        )
        assert main.read_bytes() == garbage  # loading overwrote nothing

        restored.start()  # the first save after the restore
        restored.flush()
        aside = list(checkpoint_dir.glob("twice.corrupt-*.json"))
        assert len(aside) == 1
        assert aside[0].read_bytes() == garbage
        assert backup.read_bytes() == good_backup  # the garbage never became the backup
        assert _read(main)["status"] == "running"

        restored.update(processed=1, successful=1, index=1)
        restored.save()  # back to the normal rotation
        assert _read(backup)["progress"]["processed_items"] == 1
        assert _read(backup)["status"] == "running"
        assert _read(main)["progress"]["processed_items"] == 2
        assert len(list(checkpoint_dir.glob("twice.corrupt-*.json"))) == 1
    finally:
        restored.close()
    manager = UnifiedCheckpointManager(checkpoint_dir)
    assert manager.stages() == ["twice"]  # the moved-aside file is not a stage


def test_missing_main_loads_from_backup(checkpoint_dir: Path) -> None:
    cp = _two_saves(checkpoint_dir)
    cp.close()
    (checkpoint_dir / "twice.json").unlink()
    restored = EnhancedCheckpoint(checkpoint_dir / "twice.json")
    try:
        assert restored.restored_from_backup is True
        assert restored.state.progress.processed_items == 0
    finally:
        restored.close()


def test_both_files_damaged_names_both_and_changes_nothing(checkpoint_dir: Path) -> None:
    cp = _two_saves(checkpoint_dir)
    cp.close()
    main = checkpoint_dir / "twice.json"
    backup = checkpoint_dir / "twice.backup.json"
    main.write_bytes(b"{not json")
    backup.write_bytes(b"")
    with pytest.raises(CheckpointCorruptError) as info:
        EnhancedCheckpoint(main)
    assert str(main) in str(info.value) and str(backup) in str(info.value)
    assert main.read_bytes() == b"{not json"
    assert backup.read_bytes() == b""
    assert not list(checkpoint_dir.glob("*.corrupt-*"))


# Stage names ------------------------------------------------------------------------------------------

BAD_NAMES = ["../x", "a/b", ".hidden", "", "x..y", "y" * 200, "x.json", "/abs", "a\\b", "-lead"]
BAD_NAMES += ["x.backup", "x.lock", "x.tmp", "a b", "é", "x\n"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_stage_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidStageNameError):
        validate_stage_name(name)
    manager = UnifiedCheckpointManager(tmp_path / "cp")
    with pytest.raises(InvalidStageNameError):
        manager.get_checkpoint(name)
    store = JsonFileStore(tmp_path / "cp")
    with pytest.raises(InvalidStageNameError):
        store.main_path(name)
    assert not (tmp_path / "cp").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [".hidden", "", "x..y", "y" * 200, "x.json", "-lead"])
def test_bad_stage_names_refused_from_the_path(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidStageNameError):
        EnhancedCheckpoint(tmp_path / f"{name}.json")


def test_start_with_another_stage_name_is_refused(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("mine")
    with pytest.raises(InvalidStageNameError):
        cp.start("../x")
    with pytest.raises(CheckpointError, match="belongs to stage 'mine'"):
        cp.start("theirs")
    assert cp.status is CheckpointStatus.INITIALIZED


@pytest.mark.parametrize("name", ["stage1_discovery", "a.b", "A-1", "x", "z" * 128, "9lives"])
def test_valid_stage_names_work(name: str, checkpoint_dir: Path) -> None:
    assert validate_stage_name(name) == name
    cp = EnhancedCheckpoint(checkpoint_dir / f"{name}.json")
    try:
        cp.start(name, total_items=1)
        cp.update(processed=1, successful=1, index=0)
        cp.complete()
        assert _read(checkpoint_dir / f"{name}.json")["stage"] == name
        assert UnifiedCheckpointManager(checkpoint_dir).stages() == [name]
    finally:
        cp.close()


def test_store_stage_with_separator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidStageNameError):
        EnhancedCheckpoint("a/b", store=JsonFileStore(tmp_path / "cp"))


def test_tracker_stage_name_cannot_leave_the_directory(tmp_path: Path) -> None:
    import anyio

    checkpoint_dir = tmp_path / "cp"

    async def main() -> None:
        async with AsyncCheckpointTracker(checkpoint_dir, "../evil") as tracker:
            tracker.start(total_items=1)

    with pytest.raises(InvalidStageNameError):
        anyio.run(main)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cp") == []


def test_counts_accepted_by_update_load_again(checkpoint_dir: Path) -> None:
    cp = EnhancedCheckpoint(checkpoint_dir / "counts.json")
    cp.start(total_items=5)
    try:
        cp.update(processed=1, successful=2)
    except ValueError:
        cp.close()
        return  # refusing the update up front is fine too
    cp.save()
    cp.pause()
    cp.close()
    again = EnhancedCheckpoint(checkpoint_dir / "counts.json")
    again.close()
    assert again.restored_from_backup is False
