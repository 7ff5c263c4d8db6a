"""What a user's own code passes to the engine is refused at once, or kept whole.

Each refused call raises naming the stage and the value, and changes nothing: not the state in
memory, not the record on disk, not the output. Each accepted one survives a save and a reload
(the schema refuses at load what it cannot trust, so an accepted float index used to cost the
stage its progress: the next load fell back to the backup and resumed from 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common import CheckpointStatus, EnhancedCheckpoint, InvalidTransitionError


class Index:
    """An integer-like index (as numpy's are): ``operator.index`` accepts it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class Count(int):
    """An ``int`` subclass."""


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[EnhancedCheckpoint]:
    """A running stage with an output, items 0 and 1 done and saved."""
    checkpoint = EnhancedCheckpoint(tmp_path / "ck" / "s.json")
    checkpoint.attach_output(tmp_path / "out.jsonl")
    checkpoint.start("s", total_items=10)
    for index in (0, 1):
        checkpoint.update(processed=1, successful=1, index=index, record={"url": str(index)})
    checkpoint.save(force=True)
    yield checkpoint
    checkpoint.close()


def _everything(checkpoint: EnhancedCheckpoint, tmp_path: Path) -> tuple[Any, ...]:
    """The state in memory and the files on disk, after a save of whatever is pending."""
    checkpoint.save()
    record = json.loads((tmp_path / "ck" / "s.json").read_bytes())
    for volatile in ("updated_at", "progress", "run_count"):
        record.pop(volatile, None)
    state = checkpoint.state
    return (
        record,
        state.completion.to_dict(),
        {name: part.to_dict() for name, part in state.parts.items()},
        state.last_processed_index,
        state.last_processed_item,
        state.progress.processed_items,
        checkpoint.done_keys_count,
        (tmp_path / "out.jsonl").read_bytes(),
    )


REFUSED: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("float index", {"index": 5.0}, TypeError, "index must be an integer, not float (5.0)"),
    ("float index at the mark", {"index": 2.0}, TypeError, "not float (2.0)"),
    ("str index", {"index": "3"}, TypeError, "index must be an integer, not str ('3')"),
    ("negative index", {"index": -1}, ValueError, "index must be >= 0, got -1"),
    ("negative part index", {"index": -1, "part": "p"}, ValueError, ">= 0, got -1"),
    ("tuple key", {"key": ("a", 1)}, TypeError, "key must be a string, not tuple"),
    ("bytes key", {"key": b"x"}, TypeError, "key must be a string, not bytes (b'x')"),
    ("int key", {"key": 123}, TypeError, "key must be a string, not int (123)"),
    ("tuple part", {"index": 4, "part": ("a",)}, TypeError, "part must be a string, not tuple"),
    ("int last_item", {"index": 4, "last_item": 7}, TypeError, "last_item must be a string"),
    (
        "str record",
        {"index": 4, "record": "just a string"},
        TypeError,
        "update(record=...) must be a mapping (one JSON object a line), not str",
    ),
    (
        "list failed_record",
        {"index": 4, "failed_record": [1]},
        TypeError,
        "update(failed_record=...) must be a mapping",
    ),
    ("negative attempts", {"index": 4, "attempts": -1}, ValueError, "attempts must be >= 0"),
    ("str attempts", {"index": 4, "attempts": "2"}, TypeError, "attempts must be an integer"),
    ("bool attempts", {"index": 4, "attempts": True}, TypeError, "not bool (True)"),
    (
        "unencodable record",
        {"index": 4, "record": {"x": object()}},
        TypeError,
        "update(record=...) cannot be written as JSON (Object of type object is not JSON",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_update_refuses_what_a_save_or_a_load_could_not_keep_and_changes_nothing(
    stage: EnhancedCheckpoint,
    tmp_path: Path,
    arguments: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    before = _everything(stage, tmp_path)
    with pytest.raises(error) as raised:
        stage.update(processed=1, successful=1, **arguments)
    assert str(raised.value).startswith("stage 's': update")
    assert message in str(raised.value)
    assert str(raised.value).endswith("nothing was changed")
    assert _everything(stage, tmp_path) == before


def test_bad_attempts_are_refused_before_the_ledger_counts_the_item(tmp_path: Path) -> None:
    # The ledger (SQLite) refused attempts=-1 only after update() had counted the item done:
    # "refused", yet should_skip(0) was True and the next save recorded it.
    checkpoint = EnhancedCheckpoint(tmp_path / "s.json", store="sqlite")
    assert checkpoint.ledger is not None
    checkpoint.start("s", total_items=3)
    with pytest.raises(ValueError, match=r"attempts must be >= 0, got -1; nothing was changed"):
        checkpoint.update(processed=1, successful=1, index=0, attempts=-1)
    assert checkpoint.state.progress.processed_items == 0
    assert not checkpoint.should_skip(0)
    checkpoint.update(processed=1, successful=1, index=0, attempts=2)
    checkpoint.save(force=True)
    entry = checkpoint.ledger.entry("0")
    assert entry is not None and entry["attempts"] == 2
    checkpoint.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.should_skip(5.0), "should_skip() index must be an integer, not float"),
        (lambda c: c.should_skip("3"), "should_skip() index must be an integer, not str"),
        (lambda c: c.should_skip(1, part=["p"]), "should_skip() part must be a string"),
        (lambda c: c.mark_done(3.5), "mark_done() index must be an integer, not float"),
        (lambda c: c.mark_done(3, part=b"p"), "mark_done() part must be a string, not bytes"),
        (lambda c: c.start_part(("p",)), "start_part() part must be a string, not tuple"),
        (lambda c: c.finish_part(1), "finish_part() part must be a string, not int"),
    ],
    ids=["skip float", "skip str", "skip part", "mark float", "mark part", "start", "finish"],
)
def test_the_other_calls_refuse_a_non_integer_index_and_a_non_str_part(
    stage: EnhancedCheckpoint,
    tmp_path: Path,
    call: Callable[[EnhancedCheckpoint], object],
    message: str,
) -> None:
    before = _everything(stage, tmp_path)
    with pytest.raises(TypeError, match=r"^stage 's': ") as raised:
        call(stage)
    assert message in str(raised.value)
    assert _everything(stage, tmp_path) == before


def test_set_position_refuses_a_float_index_and_changes_nothing(
    stage: EnhancedCheckpoint, tmp_path: Path
) -> None:
    stage.pause()
    before = _everything(stage, tmp_path)
    for index, error, message in (
        (5.0, TypeError, "set_position() index must be an integer, not float (5.0)"),
        ("5", TypeError, "not str ('5')"),
        (-2, ValueError, "set_position() index must be >= 0, got -2"),
    ):
        with pytest.raises(error, match=r"^stage 's': ") as raised:
            stage.set_position(index)  # type: ignore[arg-type]
        assert message in str(raised.value)
    with pytest.raises(TypeError, match="part must be a string"):
        stage.set_position(3, part=3)  # type: ignore[arg-type]
    assert _everything(stage, tmp_path) == before


def test_integer_like_indices_are_kept_as_ints_and_survive_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "ck" / "s.json"
    checkpoint = EnhancedCheckpoint(path)
    checkpoint.start("s", total_items=10)
    assert checkpoint.update(processed=1, successful=1, index=False)  # bool: index 0
    assert checkpoint.update(processed=1, successful=1, index=True)
    assert checkpoint.update(processed=1, successful=1, index=Index(2))  # type: ignore[arg-type]
    assert checkpoint.update(processed=1, successful=1, index=Count(5))
    assert not checkpoint.update(processed=1, successful=1, index=Index(5))  # type: ignore[arg-type]
    assert checkpoint.should_skip(Index(2)) and not checkpoint.should_skip(Index(3))  # type: ignore[arg-type]
    checkpoint.update(processed=1, successful=1, index=Index(7), part="p")  # type: ignore[arg-type]
    assert checkpoint.mark_done(Index(8)) and checkpoint.should_skip(8)  # type: ignore[arg-type]
    assert type(checkpoint.state.last_processed_index) is int
    checkpoint.pause()
    checkpoint.close()

    reloaded = EnhancedCheckpoint(path)
    assert not reloaded.restored_from_backup
    assert reloaded.start("s", total_items=10)
    assert reloaded.resume_point[0] == 3
    assert [i for i in range(10) if reloaded.should_skip(i)] == [0, 1, 2, 5, 8]
    assert reloaded.should_skip(7, part="p")
    assert reloaded.state.progress.processed_items == 5
    reloaded.close()


def test_a_refused_float_index_no_longer_costs_the_stage_its_progress(tmp_path: Path) -> None:
    # /tmp/newbie/mistakes/floatidx.py: index=5.0 was saved, the next load refused the record
    # ("must be an integer, not float"), fell back to the backup and resumed from 0.
    path = tmp_path / "ck" / "s.json"
    checkpoint = EnhancedCheckpoint(path)
    checkpoint.start("s", total_items=10)
    for index in range(5):
        checkpoint.update(processed=1, successful=1, index=index)
    with pytest.raises(TypeError):
        checkpoint.update(processed=1, successful=1, index=5.0)  # type: ignore[arg-type]
    checkpoint.pause()
    checkpoint.close()
    reloaded = EnhancedCheckpoint(path)
    assert not reloaded.restored_from_backup
    assert reloaded.status is CheckpointStatus.PAUSED
    assert reloaded.resume_point[0] == 5
    reloaded.close()


def test_a_str_subclass_key_is_kept_as_a_str(tmp_path: Path) -> None:
    class Url(str):
        pass

    path = tmp_path / "ck" / "s.json"
    checkpoint = EnhancedCheckpoint(path)
    checkpoint.start("s")
    assert checkpoint.update(processed=1, successful=1, key=Url("https://a.example/"))
    checkpoint.pause()
    checkpoint.close()
    reloaded = EnhancedCheckpoint(path)
    assert reloaded.is_key_done("https://a.example/")
    reloaded.close()


def test_a_mapping_record_is_written_as_a_json_object(tmp_path: Path) -> None:
    from types import MappingProxyType

    checkpoint = EnhancedCheckpoint(tmp_path / "ck" / "s.json")
    checkpoint.attach_output(tmp_path / "out.jsonl")
    checkpoint.start("s")
    checkpoint.update(processed=1, successful=1, index=0, record=MappingProxyType({"url": "u"}))
    checkpoint.complete()
    checkpoint.close()
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"url":"u"}\n'


def test_update_on_a_completed_stage_says_what_to_do(tmp_path: Path) -> None:
    # /tmp/newbie/more/fail_then_resume.py: a list that grew after a completed run.
    path = tmp_path / "ck" / "s.json"
    checkpoint = EnhancedCheckpoint(path)
    checkpoint.start("s", total_items=2)
    checkpoint.update(processed=1, successful=1, index=0)
    checkpoint.complete()
    assert not checkpoint.start("s", total_items=3)
    with pytest.raises(InvalidTransitionError) as raised:
        checkpoint.update(processed=1, successful=1, index=2)
    message = str(raised.value)
    assert message.startswith("stage 's': cannot update while completed: ")
    assert "start() returned False" in message and "start(fresh=True)" in message
    assert "checkpoint-manager reset" in message
    assert checkpoint.start("s", total_items=3, fresh=True)
    assert checkpoint.update(processed=1, successful=1, index=2)
    checkpoint.close()


def test_a_directory_given_as_a_checkpoint_file_is_refused_and_nothing_is_made(
    tmp_path: Path,
) -> None:
    """EnhancedCheckpoint("checkpoints") took a stage named "checkpoints" and made
    checkpoints.json beside the directory."""
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ValueError) as raised:
        EnhancedCheckpoint(tmp_path / "checkpoints")
    assert str(raised.value).startswith(
        "EnhancedCheckpoint takes one stage's checkpoint file, DIR/<stage>.json, not a "
        f"directory: {tmp_path / 'checkpoints'} is one"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoints"]
    assert not any((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("given", ["ck/mine.json", "afile"], ids=["json-name", "a-file"])
def test_a_tracker_given_a_checkpoint_file_for_its_directory_is_refused(
    tmp_path: Path, given: str
) -> None:
    """AsyncCheckpointTracker("ck/mine.json", "mine") made a directory ck/mine.json with
    mine.json inside it, where neither the CLI nor EnhancedCheckpoint looks."""
    from common import AsyncCheckpointTracker

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError) as raised:
        AsyncCheckpointTracker(tmp_path / given, "mine")
    assert str(raised.value) == (
        "AsyncCheckpointTracker takes the checkpoint directory (it keeps DIR/mine.json there), "
        f"not a file: {tmp_path / given} (pass {(tmp_path / given).parent})"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
