"""The default store: one JSON file per stage in a directory (seed 003's layout).

For stage ``s`` the directory holds ``s.json`` (current), ``s.backup.json`` (the previous save),
``.s.tmp.json`` (only during a save), ``s.lock`` (the writer lock) and ``history/s/*.json``
(timestamped snapshots). Files are created 0600, directories 0700.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from common.errors import CheckpointCorruptError, CheckpointSaveError
from common.io.atomic import atomic_write_bytes, ensure_private_dir, fsync_dir
from common.io.faults import fault_point
from common.io.locking import StageLock
from common.journal import is_stage_journal, remove_stage_journals, stage_journal_path
from common.stores.base import (
    CheckpointStore,
    HistoryEntry,
    LoadedRecord,
    StagedRows,
    load_first_readable,
    snapshot_id_for,
    validate_stage_name,
)

__all__ = ["JsonFileStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SUFFIXES = (".backup.json", ".json")

#: One encoder for every save (``json.dumps`` with options builds a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class JsonFileStore(CheckpointStore):
    """Checkpoint records as JSON files in ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.location = str(self.directory)
        self.data_dir = Path(os.path.abspath(self.directory)).parent
        # Stages whose main file was found damaged: the next save moves it aside instead of
        # making it the backup, so the good backup is never replaced by garbage.
        self._damaged: set[str] = set()
        self._save_paths: dict[str, tuple[Path, Path, Path]] = {}  # per save: built once

    # Paths -----------------------------------------------------------------------------------

    def main_path(self, stage: str) -> Path:
        return self.directory / f"{validate_stage_name(stage)}.json"

    def backup_path(self, stage: str) -> Path:
        return self.directory / f"{validate_stage_name(stage)}.backup.json"

    def temp_path(self, stage: str) -> Path:
        return self.directory / f".{validate_stage_name(stage)}.tmp.json"

    def lock_path(self, stage: str) -> Path:
        return self.directory / f"{validate_stage_name(stage)}.lock"

    def history_dir(self, stage: str) -> Path:
        return self.directory / "history" / validate_stage_name(stage)

    def describe(self, stage: str) -> str:
        return str(self.main_path(stage))

    def journal_path(self, stage: str, name: str) -> Path:
        return stage_journal_path(self.directory, validate_stage_name(stage), name)

    def owns_file(self, stage: str, path: Path | str) -> bool:
        stage = validate_stage_name(stage)
        target = os.path.realpath(path)
        parent, name = os.path.split(target)
        if parent == os.path.realpath(self.history_dir(stage)):
            return True  # a snapshot or its temporary file
        if parent != os.path.realpath(self.directory):
            return False
        own = (self.main_path(stage), self.backup_path(stage), self.temp_path(stage))
        return (
            name in {path.name for path in (*own, self.lock_path(stage))}
            or (name.startswith(f"{stage}.corrupt-") and name.endswith(".json"))
            or is_stage_journal(self.directory, stage, target)
        )

    # Records ---------------------------------------------------------------------------------

    def load(self, stage: str, parse: Callable[[Any, Path], T]) -> LoadedRecord[T] | None:
        main, backup = self.main_path(stage), self.backup_path(stage)
        loaded = load_first_readable(
            stage,
            [(path, functools.partial(_read_json, path)) for path in (main, backup)],
            lambda data, path: parse(self.paths_from_disk(data), path),
            error_path=main,
            advice="Nothing was changed; fix or move the files, or reset the stage.",
        )
        if loaded is not None and loaded.restored_from_backup:
            if main.exists():
                self._damaged.add(stage)
                logger.info("Attempting to restore from backup")
                logger.warning(
                    "Successfully restored from backup %s; the damaged %s is kept as "
                    "%s.corrupt-<time>.json at the next save",
                    backup,
                    main,
                    main.stem,
                )
            else:
                logger.warning("Checkpoint %s is missing; restored from backup %s", main, backup)
        return loaded

    def save(self, stage: str, record: dict[str, Any], rows: StagedRows | None = None) -> None:
        if rows:
            raise ValueError("the JSON store keeps no key table or ledger: use the sqlite store")
        paths = self._save_paths.get(stage)
        if paths is None:
            paths = self._save_paths[stage] = (
                self.main_path(stage),
                self.temp_path(stage),
                self.backup_path(stage),
            )
        main, temp, backup = paths
        try:
            ensure_private_dir(self.directory)
            data = _encode(self.paths_to_disk(record)).encode()
            if stage in self._damaged and main.exists():
                stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
                aside = main.with_name(f"{main.stem}.corrupt-{stamp}.json")
                os.replace(main, aside)
                fault_point("after_damaged_aside", aside)
                logger.warning("Moved damaged checkpoint %s aside to %s", main, aside)
                atomic_write_bytes(main, data, temp_path=temp)
                self._damaged.discard(stage)
                return
            atomic_write_bytes(main, data, temp_path=temp, backup_path=backup)
        except OSError as exc:
            raise CheckpointSaveError(
                f"could not save checkpoint {main}: {exc.strerror or exc}; the previous "
                f"checkpoint is intact",
                stage=stage,
                path=main,
            ) from exc

    def list_stages(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        stages: set[str] = set()
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith(".") or not path.is_file():
                continue
            for suffix in _SUFFIXES:
                if name.endswith(suffix):
                    stem = name[: -len(suffix)]
                    if ".corrupt-" in stem:
                        break
                    with contextlib.suppress(ValueError):
                        stages.add(validate_stage_name(stem))
                    break
        return sorted(stages)

    def delete(self, stage: str, *, journals: bool = True, record_last: bool = False) -> bool:
        """See :meth:`CheckpointStore.delete`. ``record_last``: remove the main record after
        everything else (its backup, temporary file and journals), so a crash part-way leaves
        the stage listed as it was, for the same removal to be made again, never its backup
        alone or journals no record names (a store switch: :mod:`common.stores.factory`).
        """
        try:
            return self._delete(stage, journals=journals, record_last=record_last)
        except OSError as exc:
            raise CheckpointSaveError(
                f"could not remove the checkpoint files of stage {stage!r} in {self.directory}: "
                f"{exc.strerror or exc}",
                stage=stage,
                path=exc.filename or self.directory,
            ) from exc

    def _delete(self, stage: str, *, journals: bool, record_last: bool) -> bool:
        removed = False
        main, others = self.main_path(stage), (self.backup_path(stage), self.temp_path(stage))
        for path in others if record_last else (main, *others):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed = True
                fault_point("after_unlink", path)
        if journals:
            removed = remove_stage_journals(self.directory, stage) or removed
        if record_last:
            if removed:
                fsync_dir(self.directory)  # gone for good before the record is: a power cut too
            with contextlib.suppress(FileNotFoundError):
                main.unlink()
                removed = True
                fault_point("after_unlink", main)
        self._damaged.discard(stage)
        if removed and self.directory.is_dir():
            fsync_dir(self.directory)
        return removed

    def lock(self, stage: str) -> StageLock:
        return StageLock(self.lock_path(stage), stage)

    def modified_time(self, stage: str) -> float | None:
        for path in (self.main_path(stage), self.backup_path(stage)):
            with contextlib.suppress(OSError):
                return path.stat().st_mtime
        return None

    # History ---------------------------------------------------------------------------------

    def save_history(self, stage: str, record: dict[str, Any], reason: str, now: float) -> str:
        directory = self.history_dir(stage)
        try:
            ensure_private_dir(directory)
        except OSError as exc:
            raise CheckpointSaveError(
                f"could not create {directory}: {exc.strerror or exc}", stage=stage, path=directory
            ) from exc
        snapshot_id = snapshot_id_for(reason, now)
        body = {
            "snapshot": {"created": now, "reason": reason},
            "record": self.paths_to_disk(record),
        }
        target = directory / f"{snapshot_id}.json"
        try:
            atomic_write_bytes(
                target,
                _encode(body).encode(),
                temp_path=directory / f".{snapshot_id}.tmp",
            )
        except OSError as exc:
            raise CheckpointSaveError(
                f"could not save history snapshot {target}: {exc.strerror or exc}",
                stage=stage,
                path=target,
            ) from exc
        return snapshot_id

    def list_history(self, stage: str) -> list[HistoryEntry]:
        directory = self.history_dir(stage)
        if not directory.is_dir():
            return []
        entries = []
        for path in sorted(directory.glob("*.json")):
            snapshot_id = path.stem
            reason = snapshot_id.split("-", 1)[1] if "-" in snapshot_id else ""
            try:
                created = path.stat().st_mtime
            except OSError:
                continue
            entries.append(HistoryEntry(stage, snapshot_id, created, reason, path))
        return entries

    def load_history(self, stage: str, snapshot_id: str) -> dict[str, Any]:
        validate_stage_name(snapshot_id)
        path = self.history_dir(stage) / f"{snapshot_id}.json"
        try:
            body = _decode(path.read_bytes(), path)
        except FileNotFoundError:
            raise CheckpointCorruptError(
                f"no snapshot {snapshot_id!r} for stage {stage!r} in {path.parent}",
                stage=stage,
                path=path,
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("record"), dict):
            raise CheckpointCorruptError(
                f"snapshot {path} is not a checkpoint snapshot", stage=stage, path=path
            )
        record: dict[str, Any] = self.paths_from_disk(body["record"])
        return record

    def delete_history(self, stage: str, snapshot_id: str) -> None:
        validate_stage_name(snapshot_id)
        with contextlib.suppress(FileNotFoundError):
            (self.history_dir(stage) / f"{snapshot_id}.json").unlink()


MAX_NESTING = 64  # far deeper than any checkpoint; deeper values would exhaust the stack later


def _read_json(path: Path) -> Any:
    return _decode(path.read_bytes(), path)


def _decode(raw: bytes, path: Path) -> Any:
    try:
        value = json.loads(raw)
    except RecursionError:
        raise CheckpointCorruptError(
            f"checkpoint file {path}: invalid JSON (nested too deeply)", path=path
        ) from None
    except ValueError as exc:  # bad UTF-8, bad JSON, or an integer too long to convert
        detail = "empty file" if not raw.strip() else f"invalid JSON ({exc})"
        raise CheckpointCorruptError(f"checkpoint file {path}: {detail}", path=path) from None
    if _nesting(value) > MAX_NESTING:
        raise CheckpointCorruptError(
            f"checkpoint file {path}: invalid checkpoint (nested too deeply, more than "
            f"{MAX_NESTING} levels)",
            path=path,
        )
    return value


def _nesting(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: no recursion limit)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_NESTING:
                    return depth + 1
                stack.append((child, depth + 1))
        deepest = max(deepest, depth if isinstance(item, dict | list) else 0)
    return deepest
