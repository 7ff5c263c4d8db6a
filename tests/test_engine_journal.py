"""Outputs committed with the checkpoint: exactly the done records, cut back after a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from common import (
    CheckpointCorruptError,
    CheckpointError,
    EnhancedCheckpoint,
    OutputConflictError,
)
from common.journal import encode_record
from tests.conftest import MakeCheckpoint


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _run(cp: EnhancedCheckpoint, indices: list[int]) -> None:
    for i in indices:
        if cp.should_skip(i):
            continue
        assert cp.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})


def test_after_a_save_the_output_holds_exactly_the_done_records(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    output = tmp_path / "out" / "records.jsonl"
    cp = make_checkpoint("out", auto_save_interval=1000)
    journal = cp.attach_output(output)
    cp.start(total_items=6)
    _run(cp, [2, 0, 1])
    cp.update(processed=1, failed=1, index=3, failed_record={"url": "u3", "error": "404"})
    assert not output.exists() or output.read_bytes() == b""  # nothing before a save
    cp.save()
    assert _lines(output) == [{"url": "u2"}, {"url": "u0"}, {"url": "u1"}]
    assert _lines(output.with_name("records.failed.jsonl")) == [{"url": "u3", "error": "404"}]
    saved = json.loads(cp.path.read_text())
    assert saved["journals"]["output"] == output.stat().st_size == journal.committed
    assert saved["output_file"] == "out/records.jsonl"  # relative to the data dir
    assert cp.state.output_file == str(output)
    assert list(journal.read_committed()) == _lines(output)
    assert journal.load_committed() == _lines(output)


def test_update_takes_every_argument_by_position_in_the_documented_order(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    """The order is API: processed, successful, failed, skipped, last_item, index, key, part,
    record, failed_record, attempts."""
    output = tmp_path / "records.jsonl"
    cp = make_checkpoint("positional", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=4)
    assert cp.update(1, 1, 0, 0, "u0", 0, None, None, {"url": "u0"}, None, 1)
    assert cp.update(1, 0, 1, 0, "u1", 1, "k1", None, None, {"url": "u1", "error": "404"}, 3)
    assert cp.update(1, 0, 0, 1, "u2", 0, None, "shard")
    assert not cp.update(1, 1, 0, 0, "u1 again", 2, "k1")  # the key was done
    cp.save()
    progress = cp.state.progress
    assert (progress.processed_items, progress.successful_items) == (3, 1)
    assert (progress.failed_items, progress.skipped_items) == (1, 1)
    assert cp.should_skip(0) and cp.should_skip(1) and not cp.should_skip(2)
    assert cp.should_skip(0, "shard") and not cp.should_skip(1, "shard")
    assert cp.is_key_done("k1") and cp.state.last_processed_item == "u2"
    assert _lines(output) == [{"url": "u0"}]
    assert _lines(output.with_name("records.failed.jsonl")) == [{"url": "u1", "error": "404"}]


def test_records_written_after_the_last_save_are_cut(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    output = tmp_path / "records.jsonl"
    cp = make_checkpoint("cut", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=10)
    _run(cp, [0, 1, 2, 3, 4])
    cp.save()
    committed = output.read_bytes()
    _run(cp, [5, 6, 7])  # done in memory, never saved
    cp.close()  # like a crash after the last save: close() saves nothing
    assert output.read_bytes() == committed
    # A crashed writer may have appended more, the last line torn.
    with output.open("ab") as handle:
        handle.write(encode_record({"url": "u5"}) + b'{"url": "u6"')

    resumed = make_checkpoint("cut", auto_save_interval=1000)
    resumed.attach_output(output)
    resumed.start()
    assert output.read_bytes() == committed
    assert [i for i in range(10) if resumed.should_skip(i)] == [0, 1, 2, 3, 4]
    _run(resumed, list(range(10)))
    resumed.complete()
    assert _lines(output) == [{"url": f"u{i}"} for i in range(10)]


def test_attach_without_the_lock_leaves_the_live_writers_file_alone(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    output = tmp_path / "records.jsonl"
    writer = make_checkpoint("live", auto_save_interval=1000)
    writer.attach_output(output)
    writer.start(total_items=3)
    _run(writer, [0])
    writer.save()
    with output.open("ab") as handle:  # bytes the live writer is appending right now
        handle.write(b'{"url": "u1"}\n')
    before = output.read_bytes()
    observer = make_checkpoint("live")
    observer.attach_output(output)
    assert output.read_bytes() == before


def test_a_first_start_refuses_a_file_it_never_wrote_and_fresh_empties_it(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    output = tmp_path / "records.jsonl"
    output.write_text('{"url": "left over from another run"}\n')
    cp = make_checkpoint("fresh_out")
    cp.attach_output(output)
    with pytest.raises(OutputConflictError, match="never wrote"):
        cp.start(total_items=2)
    assert output.read_text() == '{"url": "left over from another run"}\n'
    cp.start(total_items=2, fresh=True)
    assert output.read_bytes() == b""
    _run(cp, [0, 1])
    cp.complete()
    assert _lines(output) == [{"url": "u0"}, {"url": "u1"}]


def test_fresh_true_forgets_progress_and_output(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    output = tmp_path / "records.jsonl"
    cp = make_checkpoint("redo", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=4)
    _run(cp, [0, 1])
    cp.pause()
    cp.close()
    again = make_checkpoint("redo")
    again.attach_output(output)
    assert again.start(total_items=4, fresh=True) is True
    assert output.read_bytes() == b""
    assert again.state.progress.processed_items == 0
    assert not again.should_skip(0)
    _run(again, [0, 1, 2, 3])
    again.complete()
    assert _lines(output) == [{"url": f"u{i}"} for i in range(4)]


def _committed_output(tmp_path: Path, checkpoint_dir: Path) -> tuple[Path, Path]:
    output = tmp_path / "records.jsonl"
    cp = EnhancedCheckpoint(checkpoint_dir / "short.json", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=10)
    _run(cp, [0, 1, 2, 3])
    cp.pause()
    cp.close()
    return output, checkpoint_dir / "short.json"


def test_output_shorter_than_committed_is_refused(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, checkpoint_dir: Path
) -> None:
    output, checkpoint = _committed_output(tmp_path, checkpoint_dir)
    damaged = output.read_bytes()[:20]
    output.write_bytes(damaged)
    saved = checkpoint.read_bytes()
    cp = make_checkpoint("short")
    cp.attach_output(output)
    with pytest.raises(CheckpointCorruptError) as info:
        cp.start()
    assert str(output) in str(info.value)
    assert "records are missing" in str(info.value)
    assert output.read_bytes() == damaged
    assert checkpoint.read_bytes() == saved


def test_missing_output_with_committed_records_is_refused(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, checkpoint_dir: Path
) -> None:
    output, _ = _committed_output(tmp_path, checkpoint_dir)
    output.unlink()
    cp = make_checkpoint("short")
    cp.attach_output(output)
    with pytest.raises(CheckpointCorruptError, match=re.escape(str(output))):
        cp.start()
    assert not output.exists()


def test_retrying_start_over_a_short_output_is_still_refused(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, checkpoint_dir: Path
) -> None:
    output, _ = _committed_output(tmp_path, checkpoint_dir)
    output.write_bytes(output.read_bytes()[:20])
    cp = make_checkpoint("short")
    cp.attach_output(output)
    with pytest.raises(CheckpointCorruptError):
        cp.start()
    with pytest.raises(CheckpointCorruptError):
        cp.start()


def test_attaching_a_second_path_under_the_same_name_is_refused(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    cp = make_checkpoint("twice_attached")
    first = cp.attach_output(tmp_path / "a.jsonl")
    assert cp.attach_output(tmp_path / "a.jsonl") is first
    with pytest.raises(CheckpointError, match="already"):
        cp.attach_output(tmp_path / "b.jsonl")


def test_record_without_an_output_changes_nothing(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("no_output")
    cp.start(total_items=2)
    with pytest.raises(CheckpointError):
        cp.update(processed=1, successful=1, index=0, record={"url": "u0"})
    assert not cp.should_skip(0)
    assert cp.state.progress.processed_items == 0


@pytest.mark.parametrize(
    "records",
    [
        {"record": {"url": "u2", "when": object()}},
        {"record": {"url": "u2"}, "failed_record": {"url": "u2", "error": object()}},
    ],
    ids=["record", "failed record"],
)
def test_a_record_json_cannot_encode_is_refused_before_the_item_counts(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, records: dict[str, Any]
) -> None:
    """Otherwise the item would be committed done with no output line: lost for good."""
    output = tmp_path / "records.jsonl"
    cp = make_checkpoint("unencodable", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=5)
    _run(cp, [0, 1])
    with pytest.raises(TypeError, match="not JSON serializable"):
        cp.update(processed=1, successful=1, index=2, **records)
    assert not cp.should_skip(2)
    assert cp.state.progress.processed_items == 2
    cp.save()
    assert _lines(output) == [{"url": "u0"}, {"url": "u1"}]
    assert json.loads(cp.path.read_text())["progress"]["processed_items"] == 2
    _run(cp, [2])  # the item is still to do, and goes through once it encodes
    cp.save()
    assert _lines(output) == [{"url": "u0"}, {"url": "u1"}, {"url": "u2"}]


@pytest.mark.parametrize("counts", [{"successful": 1.0}, {"processed": 1.5}, {"failed": "1"}])
def test_counts_that_are_not_integers_are_refused_and_the_stage_stays_resumable(
    make_checkpoint: MakeCheckpoint, counts: dict[str, Any]
) -> None:
    """A float count used to be saved, then refused by the schema at the next load."""
    cp = make_checkpoint("floats", auto_save_interval=1)
    cp.start(total_items=5)
    cp.update(processed=1, successful=1, index=0)
    with pytest.raises(TypeError, match=r"stage 'floats': update\(\) counts must be integers"):
        cp.update(**{"processed": 1, "index": 1, **counts})
    assert not cp.should_skip(1)
    cp.save()
    cp.close()
    again = make_checkpoint("floats")
    assert again.state.progress.processed_items == 1  # loads: nothing but integers was saved
    again.close()
