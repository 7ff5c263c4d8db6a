"""The small interface every checkpoint store implements.

A store persists one JSON-able record per stage, keeps a timestamped history of records, and
gives out a per-stage writer lock. The engine (:class:`common.checkpoint.EnhancedCheckpoint`)
owns the policy: when to save, what the record holds, how to validate it. Stores own the bytes.
"""

from __future__ import annotations

import errno
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from common.datapaths import absolute_paths, relative_paths
from common.errors import (
    CheckpointCorruptError,
    CheckpointSchemaError,
    CheckpointUnreadableError,
    InvalidStageNameError,
)

if TYPE_CHECKING:
    from common.ledger import LedgerBackend, LedgerEntry

__all__ = [
    "STAGE_NAME_PATTERN",
    "CheckpointStore",
    "HistoryEntry",
    "KeySet",
    "LoadedRecord",
    "MemoryKeySet",
    "StagedRows",
    "WriterLock",
    "load_first_readable",
    "snapshot_id_for",
    "validate_stage_name",
]

logger = logging.getLogger(__name__)

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


def load_first_readable(
    stage: str,
    candidates: Sequence[tuple[Path, Callable[[], Any]]],
    parse: Callable[[Any, Path], T],
    *,
    error_path: Path,
    advice: str,
) -> LoadedRecord[T] | None:
    """The first candidate (main record, then its backup) that reads and parses.

    Each candidate is ``(where, read)``: ``read()`` returns the decoded JSON value (``null``
    included), raises FileNotFoundError when that copy does not exist, and raises
    :class:`CheckpointCorruptError` for bytes that are not JSON. A copy that cannot be *read*
    (permission denied, I/O error) stops the load with :class:`CheckpointUnreadableError`: its
    content is unknown, so falling back to an older backup (and later moving the main file aside)
    could lose progress. When no copy parses, :class:`CheckpointCorruptError` (or
    :class:`CheckpointSchemaError` when every copy was valid JSON of the wrong shape) names every
    copy tried, followed by ``advice`` (and nothing is logged: the caller reports it). When a
    later copy parses, each earlier one's problem is logged as an error. None when no copy exists.
    """
    problems: list[str] = []
    schema_only = True
    for position, (where, read) in enumerate(candidates):
        try:
            value = parse(read(), where)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CheckpointUnreadableError(
                f"cannot read {where}: {_os_reason(exc)}; nothing was changed",
                stage=stage,
                path=where,
            ) from exc
        except CheckpointCorruptError as exc:
            problems.append(str(exc))
            schema_only = schema_only and isinstance(exc, CheckpointSchemaError)
            continue
        for problem in problems:
            # Seed 003's lines when a backup takes over; when no copy parses, the error raised
            # below names every copy and its caller reports it once.
            logger.error("Failed to load checkpoint: %s", problem)
        return LoadedRecord(value, where, position > 0)
    if not problems:
        return None
    error_type = CheckpointSchemaError if schema_only else CheckpointCorruptError
    raise error_type(
        f"no readable checkpoint for stage {stage!r}: " + "; ".join(problems) + f". {advice}",
        stage=stage,
        path=error_path,
    )


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One timestamped snapshot of a stage's record."""

    stage: str
    snapshot_id: str
    created: float
    reason: str
    path: Path | None


def snapshot_id_for(reason: str, now: float) -> str:
    """A history snapshot id: UTC time to the microsecond, then the reason (safe characters)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:].replace(
        ".", "_"
    )
    safe_reason = "".join(c if c.isalnum() else "-" for c in reason)[:32] or "snapshot"
    return f"{stamp}-{safe_reason}"


@dataclass(slots=True)
class StagedRows:
    """Rows a store commits in the same transaction as one save of a stage's record.

    Only stores that keep keys or a ledger themselves (:meth:`CheckpointStore.key_set`,
    :meth:`CheckpointStore.ledger_backend`) are ever handed any.
    """

    keys: list[str] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.keys or self.ledger)


class KeySet(ABC):
    """A stage's done keys (URLs, ids), as the engine's owner thread sees them.

    :meth:`add` counts a key as done in memory at once; :meth:`take_pending` hands what was
    added since the last call to a save, which commits it with the record that counts it.
    """

    #: True: the store's ``save`` commits the keys (``StagedRows.keys``); False: the engine
    #: appends them to its keys journal.
    committed_by_store: bool = False

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, key: str) -> None:
        """Mark ``key`` done (it must not be done already)."""

    @abstractmethod
    def take_pending(self) -> list[str]:
        """The keys added since the last call, in order; they now belong to a save."""

    def committed(self, keys: list[str]) -> None:
        """Saver thread: the save holding ``keys`` (from :meth:`take_pending`) committed."""
        return None

    @abstractmethod
    def clear(self) -> None:
        """Forget every key (a reset or fresh start)."""

    def recover(self, committed: int) -> int:
        """Writer, on taking the stage: keep the first ``committed`` keys (the record's
        ``keys_done``) and drop any later ones, as a journal is cut back to its committed
        length; returns how many were dropped. Keys in a journal are cut with the journal."""
        return 0


class MemoryKeySet(KeySet):
    """Keys in a Python set; the engine persists them in its append-only keys journal."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys: set[str] = set(keys)
        self._pending: list[str] = []

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._keys.add(key)
        self._pending.append(key)

    def take_pending(self) -> list[str]:
        pending, self._pending = self._pending, []
        return pending

    def clear(self) -> None:
        self._keys.clear()
        self._pending.clear()


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
    #: The data directory (the checkpoint directory's parent) when the store lives in one:
    #: recorded input and output paths under it are kept relative to it (common.datapaths).
    data_dir: Path | None = None

    def paths_to_disk(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as written: its paths under :attr:`data_dir` relative to it."""
        return record if self.data_dir is None else relative_paths(record, self.data_dir)

    def paths_from_disk(self, data: Any) -> Any:
        """A record as read: its relative paths resolved under :attr:`data_dir`."""
        return data if self.data_dir is None else absolute_paths(data, self.data_dir)

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
    def save(self, stage: str, record: dict[str, Any], rows: StagedRows | None = None) -> None:
        """Persist ``record`` atomically: afterwards a load sees the old or the new one.

        ``rows`` (done keys, ledger entries) commit in the same transaction; only a store that
        hands out :meth:`key_set` or :meth:`ledger_backend` receives any.
        """

    @abstractmethod
    def list_stages(self) -> list[str]:
        """Every stage with a record (including unreadable ones), sorted."""

    @abstractmethod
    def delete(self, stage: str, *, journals: bool = True) -> bool:
        """Remove ``stage``'s record and backup; True if anything was removed.

        With ``journals=False`` the stage's journals in the directory stay (the stage's next
        start cuts them as leftovers of a fresh start; until then a restore can use them).
        """

    @abstractmethod
    def lock(self, stage: str) -> WriterLock:
        """The writer lock for ``stage`` (not yet acquired)."""

    @abstractmethod
    def modified_time(self, stage: str) -> float | None:
        """When ``stage``'s record was last written (epoch seconds), or None."""

    @abstractmethod
    def journal_path(self, stage: str, name: str) -> Path:
        """Where the engine keeps ``stage``'s append-only journal ``name`` (e.g. done keys)."""

    def key_set(self, stage: str) -> KeySet | None:
        """The stage's done keys kept by the store itself, or None: the engine then keeps them
        in memory and in its keys journal (fine up to a few hundred thousand keys)."""
        return None

    def ledger_backend(self) -> LedgerBackend | None:
        """The per-item ledger's storage (:mod:`common.ledger`), or None if there is none."""
        return None

    def close(self) -> None:
        """Release connections; the store may be used again afterwards (it reconnects)."""
        return None

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
