"""The small interface every checkpoint store implements.

A store persists one JSON-able record per stage, keeps a timestamped history of records, and
gives out a per-stage writer lock. The engine (:class:`common.checkpoint.EnhancedCheckpoint`)
owns the policy: when to save, what the record holds, how to validate it. Stores own the bytes.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from common.errors import InvalidStageNameError

__all__ = [
    "STAGE_NAME_PATTERN",
    "CheckpointStore",
    "HistoryEntry",
    "LoadedRecord",
    "WriterLock",
    "validate_stage_name",
]

T = TypeVar("T")

STAGE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def validate_stage_name(stage: str) -> str:
    """Return ``stage`` if it is a safe file name, else raise :class:`InvalidStageNameError`.

    Letters, digits, ``_``, ``-`` and ``.``, starting with a letter or digit, at most 128
    characters, and no ``..``: nothing that can leave the checkpoint directory.
    """
    if (
        not isinstance(stage, str)
        or not STAGE_NAME_PATTERN.fullmatch(stage)
        or ".." in stage
        or stage.endswith((".backup", ".tmp", ".lock", ".json"))
    ):
        raise InvalidStageNameError(
            f"invalid stage name {stage!r}: use letters, digits, '_', '-' and '.', starting with "
            f"a letter or digit (at most 128 characters, no '..', no path separators)",
            stage=str(stage),
        )
    return stage


@dataclass(frozen=True, slots=True)
class LoadedRecord(Generic[T]):
    """What :meth:`CheckpointStore.load` found: the parsed value and where it came from."""

    value: T
    source: Path
    restored_from_backup: bool


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One timestamped snapshot of a stage's record."""

    stage: str
    snapshot_id: str
    created: float
    reason: str
    path: Path | None


class WriterLock(Protocol):
    """The per-stage writer lock a store hands out."""

    @property
    def held(self) -> bool: ...

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def is_held_elsewhere(self) -> bool: ...

    def holder_pid(self) -> int | None: ...


class CheckpointStore(ABC):
    """Where checkpoint records live. Implementations must make :meth:`save` atomic."""

    #: A human-readable location for messages (a directory, a database URL without password).
    location: str

    @abstractmethod
    def describe(self, stage: str) -> str:
        """Where ``stage``'s record lives, for error messages."""

    @abstractmethod
    def load(self, stage: str, parse: Callable[[Any, Path], T]) -> LoadedRecord[T] | None:
        """Load and parse ``stage``'s record; None when there is none.

        ``parse`` validates the decoded JSON and raises on anything it cannot trust; the store
        then falls back to its backup and raises :class:`CheckpointCorruptError` naming every
        file it tried when nothing parses. It never overwrites a damaged record while loading.
        """

    @abstractmethod
    def save(self, stage: str, record: dict[str, Any]) -> None:
        """Persist ``record`` atomically: afterwards a load sees the old or the new one."""

    @abstractmethod
    def list_stages(self) -> list[str]:
        """Every stage with a record (including unreadable ones), sorted."""

    @abstractmethod
    def delete(self, stage: str) -> bool:
        """Remove ``stage``'s record and backup; True if anything was removed."""

    @abstractmethod
    def lock(self, stage: str) -> WriterLock:
        """The writer lock for ``stage`` (not yet acquired)."""

    @abstractmethod
    def modified_time(self, stage: str) -> float | None:
        """When ``stage``'s record was last written (epoch seconds), or None."""

    @abstractmethod
    def journal_path(self, stage: str, name: str) -> Path:
        """Where the engine keeps ``stage``'s append-only journal ``name`` (e.g. done keys)."""

    # History -------------------------------------------------------------------------------

    @abstractmethod
    def save_history(self, stage: str, record: dict[str, Any], reason: str, now: float) -> str:
        """Store a timestamped snapshot of ``record``; return its id."""

    @abstractmethod
    def list_history(self, stage: str) -> list[HistoryEntry]:
        """Snapshots of ``stage``, oldest first."""

    @abstractmethod
    def load_history(self, stage: str, snapshot_id: str) -> dict[str, Any]:
        """The record of one snapshot."""

    @abstractmethod
    def delete_history(self, stage: str, snapshot_id: str) -> None:
        """Remove one snapshot."""
