"""Item labels held above the watermark are capped: a stuck item costs indices, not URLs."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from common.completion import MAX_LABELS, CompletionWindow


def test_thousands_done_above_a_stuck_item_keep_at_most_max_labels() -> None:
    window = CompletionWindow()
    url = "https://www.example.edu/" + "x" * 1000
    for index in range(1, 20_001):  # index 0 is the stuck one
        assert window.mark(index, f"{url}/{index}")
    data = window.to_dict()
    assert len(data["labels"]) == MAX_LABELS
    assert len(json.dumps(data)) < 20_000 * 8 + MAX_LABELS * 1100
    assert window.watermark == 0 and window.is_done(20_000) and not window.is_done(0)
    window.mark(0, f"{url}/0")
    # Exact again, and the prefix item lags (an item of the done prefix), never runs ahead.
    assert window.watermark == 20_001 and window.in_flight_gap == 0
    assert window.prefix_item == f"{url}/{MAX_LABELS}"
    assert window.to_dict()["labels"] == {}


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3 * MAX_LABELS), st.randoms(use_true_random=False))
def test_prefix_item_is_always_an_item_of_the_done_prefix(n: int, rng: random.Random) -> None:
    order = list(range(3 * MAX_LABELS))
    rng.shuffle(order)
    window = CompletionWindow()
    for index in order[:n]:
        window.mark(index, f"id-{index}")
        if window.prefix_item is None:
            assert window.watermark == 0
        else:
            assert int(window.prefix_item.removeprefix("id-")) < window.watermark
    assert len(window.to_dict()["labels"]) <= MAX_LABELS
