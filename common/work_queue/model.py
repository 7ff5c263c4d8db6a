"""The values the work queue hands out and takes back: claimed items, batches, results, stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Batch", "ClaimedItem", "ItemResult", "LoadResult", "Outcome", "StageRecord"]

Outcome = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """One item of a claimed batch; ``attempts`` counts this claim."""

    key: str
    position: int
    payload: Any
    attempts: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Items leased to one worker under one token until ``commit`` or ``release``."""

    stage: str
    worker: str
    token: str
    items: tuple[ClaimedItem, ...]

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What doing one item gave: ``record`` goes to the output (ok) or the sidecar (failed)."""

    key: str
    outcome: Outcome
    record: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StageRecord:
    """A loaded stage as the database holds it."""

    stage: str
    input_hash: str
    config: dict[str, Any]
    total: int
    lease_seconds: float
    max_attempts: int
    exported: bool


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What :meth:`WorkQueue.load` did: ``created`` is False when the stage was already there."""

    created: bool
    stage: StageRecord
