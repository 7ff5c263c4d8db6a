"""Exact completion tracking when items finish out of order.

Resume state is a *low watermark* (every index below it is done) plus the set of finished indices
above it. With 50-500 items in flight the set stays as small as the window of work in progress,
however many items are done, so saves cost the same at item 1,000 and item 1,000,000, and
``is_done(i)`` is exact: an item that finished early is never redone, and one still in flight when
the process died is never skipped. "Last processed index" is kept by callers for display only.

The set is as large as the number of items that finished while the oldest unfinished one was
still in flight: one item retrying with backoff, or waiting out a timeout, while thousands of
fast ones finish makes it that large. Indices are kept however many (exactness needs them); the
item labels kept for :attr:`CompletionWindow.prefix_item` are capped at :data:`MAX_LABELS`, so
that case does not also hold thousands of URLs in memory and write them in every save.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_LABELS", "CompletionWindow", "PartProgress"]

MAX_LABELS = 256
"""Labels of items finished above the watermark kept at most (the lowest indices win)."""


class CompletionWindow:
    """Low watermark plus the finished indices above it.

    It also remembers, for a source read in id order (seed 001's ``last_processed_id``), the item
    label of the last index of the contiguous done prefix: :attr:`prefix_item`. With more than
    :data:`MAX_LABELS` items done above the watermark, later ones keep no label, and the prefix
    item may then be an earlier item of the done prefix: it can lag behind, never run ahead, so
    resuming an id-ordered source from it redoes a little and skips nothing.
    """

    __slots__ = ("_labels", "above", "prefix_item", "watermark")

    def __init__(
        self,
        watermark: int = 0,
        done_above: Iterable[int] = (),
        prefix_item: str | None = None,
        labels: dict[int, str] | None = None,
    ) -> None:
        if watermark < 0:
            raise ValueError(f"watermark must be >= 0, got {watermark}")
        self.watermark = watermark
        #: Finished indices above the watermark (read directly on hot paths; changed by mark()).
        self.above: set[int] = set()
        self._labels: dict[int, str] = dict(labels or {})
        self.prefix_item = prefix_item
        for index in done_above:
            self.mark(index)

    def mark(self, index: int, label: str | None = None) -> bool:
        """Record ``index`` as done; return False if it already was."""
        watermark = self.watermark
        if index == watermark:
            watermark += 1
            if label is not None:
                self.prefix_item = label
            above = self.above
            if above:
                labels = self._labels
                while watermark in above:
                    above.remove(watermark)
                    item = labels.pop(watermark, None)
                    if item is not None:
                        self.prefix_item = item
                    watermark += 1
            self.watermark = watermark
            return True
        if index > watermark:
            if index in self.above:
                return False
            self.above.add(index)
            if label is not None and len(self._labels) < MAX_LABELS:
                self._labels[index] = label
            return True
        if index < 0:
            raise ValueError(f"item index must be >= 0, got {index}")
        return False

    def is_done(self, index: int) -> bool:
        """True when ``index`` finished (exact, whatever the completion order)."""
        return index < self.watermark or index in self.above

    @property
    def done_count(self) -> int:
        return self.watermark + len(self.above)

    @property
    def in_flight_gap(self) -> int:
        """How many finished indices are held above the watermark."""
        return len(self.above)

    @property
    def highest_done(self) -> int | None:
        """The largest finished index, or None when nothing finished."""
        if self.above:
            return max(self.above)
        return self.watermark - 1 if self.watermark else None

    def done_above(self) -> list[int]:
        return sorted(self.above)

    def pending_below(self, limit: int) -> Iterator[int]:
        """Indices below ``limit`` that are not done yet, in order."""
        index = self.watermark
        while index < limit:
            if index not in self.above:
                yield index
            index += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark,
            "done_above": sorted(self.above),
            "prefix_item": self.prefix_item,
            "labels": {str(i): v for i, v in sorted(self._labels.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompletionWindow:
        labels = {int(k): str(v) for k, v in data.get("labels", {}).items()}
        # Going through mark() normalises a hand-edited window (indices at or below the mark).
        return cls(
            int(data["watermark"]),
            (int(i) for i in data.get("done_above", ())),
            data.get("prefix_item"),
            labels,
        )


@dataclass
class PartProgress:
    """One part of a stage's input (a split, a shard, one of several files)."""

    name: str
    total: int | None = None
    finished: bool = False
    window: CompletionWindow = field(default_factory=CompletionWindow)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "finished": self.finished, **self.window.to_dict()}

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> PartProgress:
        total = data.get("total")
        return cls(
            name=name,
            total=None if total is None else int(total),
            finished=bool(data.get("finished", False)),
            window=CompletionWindow.from_dict(data),
        )
