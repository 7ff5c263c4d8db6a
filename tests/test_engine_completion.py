"""Exact completion under out-of-order finishing: the window, parts, keys and duplicates."""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import CheckpointCorruptError, EnhancedCheckpoint
from common.completion import CompletionWindow
from common.journal import encode_record
from tests.conftest import MakeCheckpoint


def _check_against_model(window: CompletionWindow, done: set[int], limit: int) -> None:
    for i in range(limit + 3):
        assert window.is_done(i) == (i in done), i
    lowest_missing = next(i for i in range(limit + 2) if i not in done)
    assert window.watermark == lowest_missing
    assert window.done_count == len(done)
    assert window.done_above() == sorted(i for i in done if i > lowest_missing)
    assert window.in_flight_gap == len(window.done_above())
    assert window.highest_done == (max(done) if done else None)
    assert list(window.pending_below(limit)) == [i for i in range(limit) if i not in done]


@settings(max_examples=200, deadline=None)
@given(st.permutations(list(range(60))), st.integers(0, 60))
def test_random_permutation_prefix_matches_a_set(order: list[int], k: int) -> None:
    window = CompletionWindow()
    done: set[int] = set()
    for index in order[:k]:
        assert window.mark(index) is True
        done.add(index)
        assert window.is_done(index)
    _check_against_model(window, done, 60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=150), st.randoms(use_true_random=False))
def test_random_subset_with_repeats_matches_a_set(marks: list[int], rng: random.Random) -> None:
    rng.shuffle(marks)
    window = CompletionWindow()
    done: set[int] = set()
    for index in marks:
        assert window.mark(index) is (index not in done)
        done.add(index)
    _check_against_model(window, done, 201)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.integers(1, 32), st.randoms(use_true_random=False))
def test_gap_above_watermark_is_bounded_by_the_window(
    n: int, width: int, rng: random.Random
) -> None:
    """Workers take items only below watermark + width; they finish in random order."""
    window = CompletionWindow()
    done: set[int] = set()
    in_flight: set[int] = set()
    next_index = 0
    largest_gap = 0
    while len(done) < n:
        while next_index < n and next_index < window.watermark + width:
            in_flight.add(next_index)
            next_index += 1
        finished = rng.choice(sorted(in_flight))
        in_flight.remove(finished)
        assert window.mark(finished) is True
        done.add(finished)
        largest_gap = max(largest_gap, window.in_flight_gap)
        assert window.in_flight_gap <= width - 1
        assert window.in_flight_gap == len([i for i in done if i >= window.watermark])
    assert window.watermark == n
    assert window.in_flight_gap == 0
    assert largest_gap <= width - 1


@settings(max_examples=150, deadline=None)
@given(st.sets(st.integers(0, 500), max_size=120), st.randoms(use_true_random=False))
def test_to_dict_from_dict_round_trip(done: set[int], rng: random.Random) -> None:
    order = sorted(done)
    rng.shuffle(order)
    window = CompletionWindow()
    for index in order:
        window.mark(index, f"id-{index}")
    data = window.to_dict()
    missing = window.watermark
    window.mark(missing, f"id-{missing}")
    for copy in (
        CompletionWindow.from_dict(data),
        CompletionWindow.from_dict(json.loads(json.dumps(data))),
    ):
        assert copy.to_dict() == data
        assert all(copy.is_done(i) == (i in done) for i in range(503))
        # Labels above the watermark survive, so the prefix label keeps moving correctly.
        copy.mark(missing, f"id-{missing}")
        assert copy.to_dict() == window.to_dict()
        assert copy.prefix_item == window.prefix_item


@settings(max_examples=150, deadline=None)
@given(st.permutations(list(range(40))), st.integers(0, 40))
def test_prefix_item_is_label_of_last_prefix_index(order: list[int], k: int) -> None:
    window = CompletionWindow()
    for index in order[:k]:
        window.mark(index, f"id-{index}")
        expected = f"id-{window.watermark - 1}" if window.watermark else None
        assert window.prefix_item == expected


def test_window_edge_cases() -> None:
    window = CompletionWindow()
    assert window.highest_done is None
    assert window.mark(0) is True
    assert window.mark(0) is False
    assert window.mark(5) is True
    assert window.mark(5) is False
    with pytest.raises(ValueError, match=">= 0"):
        window.mark(-1)
    with pytest.raises(ValueError, match=">= 0"):
        CompletionWindow(-1)
    hand_edited = CompletionWindow.from_dict({"watermark": 3, "done_above": [1, 3, 4, 7]})
    assert hand_edited.watermark == 5 and hand_edited.done_above() == [7]


# Through EnhancedCheckpoint ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.sets(st.integers(0, 150), max_size=100), st.randoms(use_true_random=False))
def test_should_skip_is_exact_after_save_and_reload(done: set[int], rng: random.Random) -> None:
    order = sorted(done)
    rng.shuffle(order)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "exact.json"
        cp = EnhancedCheckpoint(path, auto_save_interval=7)
        cp.start(total_items=151)
        for index in order:
            assert cp.update(processed=1, successful=1, last_item=f"u{index}", index=index)
        cp.save()
        cp.close()  # a crash right after the save
        saved = json.loads(path.read_text())["completion"]
        assert saved["watermark"] + len(saved["done_above"]) == len(done)
        again = EnhancedCheckpoint(path)
        try:
            assert [i for i in range(160) if again.should_skip(i)] == sorted(done)
            assert again.state.progress.processed_items == len(done)
        finally:
            again.close()


def test_last_processed_index_is_display_only(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("display")
    cp.start(total_items=10)
    for index in (9, 0, 1):
        cp.update(processed=1, successful=1, index=index, last_item=f"u{index}")
    assert cp.state.last_processed_index == 1
    assert cp.state.last_processed_item == "u1"
    assert [i for i in range(10) if cp.should_skip(i)] == [0, 1, 9]
    assert cp.resume_point == (2, "u1")


# Parts -----------------------------------------------------------------------------------------


def test_parts_are_tracked_separately_and_persisted(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("parts", auto_save_interval=1000)
    cp.start(total_items=30)
    cp.start_part("shard-a", total=10)
    cp.start_part("shard-b", total=10)
    cp.start_part("shard-c")
    for index in (0, 1, 2, 7):
        assert cp.update(processed=1, successful=1, index=index, part="shard-a")
    assert cp.update(processed=1, successful=1, index=0, part="shard-b")
    assert not cp.update(processed=1, successful=1, index=7, part="shard-a")
    cp.finish_part("shard-c")
    assert cp.should_skip(0, part="shard-a") and cp.should_skip(7, part="shard-a")
    assert not cp.should_skip(3, part="shard-a")
    assert cp.should_skip(0, part="shard-b") and not cp.should_skip(1, part="shard-b")
    assert cp.should_skip(12345, part="shard-c")  # a finished part is skipped whole
    assert not cp.should_skip(0, part="never-seen")
    assert not cp.should_skip(0)  # the main window is not the parts' windows
    assert cp.state.progress.processed_items == 5
    cp.pause()
    cp.close()

    again = make_checkpoint("parts")
    assert set(again.parts) == {"shard-a", "shard-b", "shard-c"}
    assert again.parts["shard-a"].total == 10
    assert again.parts["shard-c"].total is None
    assert again.is_part_finished("shard-c") and not again.is_part_finished("shard-a")
    assert [i for i in range(10) if again.should_skip(i, part="shard-a")] == [0, 1, 2, 7]
    assert [i for i in range(10) if again.should_skip(i, part="shard-b")] == [0]
    assert again.should_skip(99, part="shard-c")
    data = json.loads(again.path.read_text())
    assert data["parts"]["shard-a"]["watermark"] == 3
    assert data["parts"]["shard-a"]["done_above"] == [7]
    assert data["parts"]["shard-c"]["finished"] is True


# Keys ------------------------------------------------------------------------------------------


def test_keys_are_marked_persisted_and_appended_only(
    make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    cp = make_checkpoint("keys", auto_save_interval=1000)
    cp.start()
    journal = checkpoint_dir / "keys.keys.jsonl"
    assert cp.update(processed=1, successful=1, key="https://a/1")
    assert cp.update(processed=1, successful=1, key="https://a/2")
    assert cp.is_key_done("https://a/1") and not cp.is_key_done("https://a/3")
    cp.save()
    first = journal.read_bytes()
    assert first == encode_record("https://a/1") + encode_record("https://a/2")
    assert cp.update(processed=1, successful=1, key="https://a/3")
    cp.save()
    assert journal.read_bytes() == first + encode_record("https://a/3")
    cp.save(force=True)  # nothing new: nothing appended
    assert journal.read_bytes() == first + encode_record("https://a/3")
    assert json.loads(cp.path.read_text())["keys_done"] == 3
    assert cp.done_keys_count == 3
    cp.pause()
    cp.close()

    again = make_checkpoint("keys")
    assert again.is_key_done("https://a/1") and again.is_key_done("https://a/3")
    assert not again.is_key_done("https://a/4")
    assert again.done_keys_count == 3


def test_unsaved_keys_are_forgotten_after_a_crash(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("keycrash", auto_save_interval=1000)
    cp.start()
    cp.update(processed=1, successful=1, key="saved")
    cp.save()
    cp.update(processed=1, successful=1, key="unsaved")
    cp.close()
    again = make_checkpoint("keycrash")
    again.start()
    assert again.is_key_done("saved") and not again.is_key_done("unsaved")
    assert again.update(processed=1, successful=1, key="unsaved") is True


def test_keys_checked_before_start_are_kept_after_a_save(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("keyorder")
    assert cp.is_key_done("k1") is False  # look before starting
    cp.start()
    assert cp.update(processed=1, successful=1, key="k1")
    cp.save()
    assert cp.is_key_done("k1")
    assert cp.update(processed=1, successful=1, key="k1") is False


def test_keys_marked_after_a_fresh_start_are_kept(make_checkpoint: MakeCheckpoint) -> None:
    old = make_checkpoint("refresh")
    old.start()
    old.update(processed=1, successful=1, key="old-key")
    old.pause()
    old.close()
    cp = make_checkpoint("refresh")
    cp.start(fresh=True)
    assert not cp.is_key_done("old-key")
    assert cp.update(processed=1, successful=1, key="new-key")
    cp.save()
    assert cp.is_key_done("new-key")


def test_missing_keys_journal_is_a_clear_error(
    make_checkpoint: MakeCheckpoint, checkpoint_dir: Path
) -> None:
    cp = make_checkpoint("lostkeys")
    cp.start()
    cp.update(processed=1, successful=1, key="k")
    cp.pause()
    cp.close()
    journal = checkpoint_dir / "lostkeys.keys.jsonl"
    journal.unlink()
    observer = make_checkpoint("lostkeys")
    with pytest.raises(CheckpointCorruptError, match=re.escape(str(journal))):
        observer.is_key_done("k")


# Duplicates --------------------------------------------------------------------------------------


def test_duplicate_index_or_key_changes_nothing(
    make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    cp = make_checkpoint("dupes", auto_save_interval=1000)
    cp.attach_output(output)
    cp.start(total_items=10)
    assert cp.update(processed=1, successful=1, index=3, record={"i": 3})
    assert cp.update(processed=1, successful=1, key="k", record={"k": 1})
    counts = cp.state.progress.to_dict()
    assert cp.update(processed=1, successful=1, index=3, record={"i": 3}) is False
    assert cp.update(processed=1, failed=1, key="k", record={"k": 1}) is False
    assert cp.update(processed=1, successful=1, index=3, key="k") is False
    assert cp.state.progress.to_dict() == counts
    cp.save()
    assert [json.loads(line) for line in output.read_text().splitlines()] == [{"i": 3}, {"k": 1}]


def test_rejected_update_does_not_mark_its_index(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("partial")
    cp.start(total_items=10)
    assert cp.update(processed=1, successful=1, index=0, key="same")
    assert cp.update(processed=1, successful=1, index=1, key="same") is False
    assert not cp.should_skip(1)
