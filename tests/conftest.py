"""Shared fixtures: an injectable clock and checkpoints that are always closed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common import CheckpointError, EnhancedCheckpoint


class FakeClock:
    """A wall clock that only moves when a test moves it (epoch seconds)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


MakeCheckpoint = Callable[..., EnhancedCheckpoint]


@pytest.fixture
def make_checkpoint(checkpoint_dir: Path) -> Iterator[MakeCheckpoint]:
    """``make_checkpoint(stage="s", **options)``: an EnhancedCheckpoint closed at teardown."""
    opened: list[EnhancedCheckpoint] = []

    def make(stage: str = "stage", **options: Any) -> EnhancedCheckpoint:
        checkpoint = EnhancedCheckpoint(checkpoint_dir / f"{stage}.json", **options)
        opened.append(checkpoint)
        return checkpoint

    yield make
    for checkpoint in opened:
        with contextlib.suppress(CheckpointError):
            checkpoint.close()
