"""The checkpoint's typed state, its JSON form, validation on load and migration.

The JSON holds every field of seed 003's documented format (so its tools keep reading it) plus
``schema_version`` and the exact resume state: the completion window, per-part windows, the
committed length of each append-only journal (stage outputs, keys), and the config hash.

Every time in the JSON is ISO 8601 UTC with a ``Z`` (``2026-12-04T18:11:19Z``; progress times
keep microseconds). Version 1 is seed 003's format, which had no ``schema_version``; version 2
wrote progress times as epoch floats and the others without the ``Z``. Both are migrated on
load (and written back as version 3 by the next save).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from common.completion import CompletionWindow, PartProgress
from common.errors import CheckpointSchemaError
from common.progress import ProgressSnapshot
from common.status import CheckpointStatus

__all__ = [
    "MAX_RECENT_ERRORS",
    "SCHEMA_VERSION",
    "CheckpointState",
    "ErrorRecord",
    "ProgressState",
    "StateHolder",
    "parse_checkpoint",
    "utc_iso",
]

SCHEMA_VERSION = 3
MAX_TIMESTAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second datetime can show
_JOURNAL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_RECENT_ERRORS = 20


def utc_iso(timestamp: float) -> str:
    """An ISO 8601 UTC time with seconds precision and a ``Z``: the one time format of the
    checkpoint JSON (and of the tools that show it)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _precise_iso(timestamp: float | None) -> str | None:
    """:func:`utc_iso` with microseconds, for the progress times the maths reads back."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _with_z(text: str | None) -> str | None:
    """A version-2 time (UTC, written without a zone) in the version-3 form."""
    if not text or text.endswith("Z") or "+" in text[10:]:
        return text
    return text + "Z"


@dataclass(slots=True)
class ProgressState:
    """Counts and clock readings (seed 003 ``progress``); ``active_seconds`` sums all runs."""

    total_items: int = 0
    processed_items: int = 0
    successful_items: int = 0
    failed_items: int = 0
    skipped_items: int = 0
    start_time: float | None = None
    last_update_time: float | None = None
    estimated_completion_time: float | None = None
    active_seconds: float = 0.0

    def snapshot(self, active_seconds: float | None = None) -> ProgressSnapshot:
        """These counts as a :class:`ProgressSnapshot`, with ``active_seconds`` of running
        time (default: the time recorded in the checkpoint)."""
        return ProgressSnapshot(
            total=self.total_items,
            processed=self.processed_items,
            successful=self.successful_items,
            failed=self.failed_items,
            skipped=self.skipped_items,
            active_seconds=self.active_seconds if active_seconds is None else active_seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_items": self.total_items,
            "processed_items": self.processed_items,
            "successful_items": self.successful_items,
            "failed_items": self.failed_items,
            "skipped_items": self.skipped_items,
            "start_time": _precise_iso(self.start_time),
            "last_update_time": _precise_iso(self.last_update_time),
            "estimated_completion_time": self.estimated_completion_time,
            "active_seconds": self.active_seconds,
        }


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One recorded error with the time it happened."""

    time: str
    message: str


@dataclass(slots=True)
class CheckpointState:
    """Everything persisted for one stage."""

    stage: str
    status: CheckpointStatus = CheckpointStatus.INITIALIZED
    progress: ProgressState = field(default_factory=ProgressState)
    last_processed_item: str | None = None
    last_processed_index: int | None = None
    batch_id: int = 0
    input_file: str | None = None
    input_file_hash: str | None = None
    input_file_size: int | None = None
    output_file: str | None = None
    config_hash: str | None = None
    created_at: str = ""
    updated_at: str = ""
    error_message: str | None = None
    error_count: int = 0
    last_error_time: str | None = None
    recent_errors: list[ErrorRecord] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    completion: CompletionWindow = field(default_factory=CompletionWindow)
    parts: dict[str, PartProgress] = field(default_factory=dict)
    journals: dict[str, int] = field(default_factory=dict)
    keys_done: int = 0
    run_count: int = 0
    recoveries: int = 0
    schema_version: int = SCHEMA_VERSION

    def part(self, name: str) -> PartProgress:
        """Part ``name`` of the input, declared now if it was not."""
        part = self.parts.get(name)
        if part is None:
            part = self.parts[name] = PartProgress(name)
        return part

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (seed 003's fields first)."""
        return {
            "stage": self.stage,
            "status": self.status.value,
            "progress": self.progress.to_dict(),
            "last_processed_item": self.last_processed_item,
            "last_processed_index": self.last_processed_index,
            "batch_id": self.batch_id,
            "input_file": self.input_file,
            "input_file_hash": self.input_file_hash,
            "output_file": self.output_file,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "error_message": self.error_message,
            "error_count": self.error_count,
            "metadata": copy.deepcopy(self.metadata),
            "schema_version": self.schema_version,
            "input_file_size": self.input_file_size,
            "config_hash": self.config_hash,
            "last_error_time": self.last_error_time,
            "recent_errors": [{"time": e.time, "message": e.message} for e in self.recent_errors],
            "completion": self.completion.to_dict(),
            "parts": {name: part.to_dict() for name, part in self.parts.items()},
            "journals": dict(self.journals),
            "keys_done": self.keys_done,
            "run_count": self.run_count,
            "recoveries": self.recoveries,
        }


class StateHolder(Protocol):
    """Where a checkpoint's current state lives (the facade: ``checkpoint.state``); a reload
    or a reset replaces it there."""

    state: CheckpointState


class _Reader:
    """Typed access to a JSON object that raises a schema error naming the file and field."""

    def __init__(self, data: dict[str, Any], path: Path | None, stage: str | None, where: str):
        self.data = data
        self.path = path
        self.stage = stage
        self.where = where

    def fail(self, key: str, problem: str) -> CheckpointSchemaError:
        name = f"{self.where}{key}"
        return CheckpointSchemaError(
            f"checkpoint file {self.path}: field {name!r} {problem}",
            stage=self.stage,
            path=self.path,
        )

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                raise self.fail(key, "is missing")
            return None
        return self.data[key]

    def integer(self, key: str, default: int | None = 0, *, minimum: int = 0) -> int:
        value = self._get(key, default is None)
        if value is None:
            if default is None:
                raise self.fail(key, "must be an integer, not null")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, not {type(value).__name__}")
        if value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        if value > 2**63:
            raise self.fail(key, f"is out of range ({value})")
        return value

    def optional_integer(self, key: str) -> int | None:
        if self.data.get(key) is None:
            return None
        return self.integer(key, minimum=-1)

    def number(self, key: str, *, minimum: float = -1e15, maximum: float = 1e15) -> float | None:
        value = self._get(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, not {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise self.fail(key, f"is out of range ({value}; {minimum:g} to {maximum:g})")
        return number

    def timestamp(self, key: str) -> float | None:
        """An ISO 8601 UTC time (``...Z``) as epoch seconds; version 2 wrote epoch seconds."""
        value = self._get(key, False)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return self.number(key, minimum=0.0, maximum=MAX_TIMESTAMP)
        if not isinstance(value, str):
            raise self.fail(key, f"must be an ISO 8601 time, not {type(value).__name__}")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(key, f"is not an ISO 8601 time ({value!r})") from None
        if moment.tzinfo is None:
            raise self.fail(key, f"has no time zone ({value!r}); times are UTC with a 'Z'")
        return moment.timestamp()

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            if required:
                raise self.fail(key, "must be a string, not null")
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def obj(self, key: str) -> dict[str, Any]:
        value = self._get(key, False)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be an object, not {type(value).__name__}")
        return value

    def sub(self, key: str) -> _Reader:
        return _Reader(self.obj(key), self.path, self.stage, f"{self.where}{key}.")


def _parse_window(reader: _Reader) -> CompletionWindow:
    watermark = reader.integer("watermark")
    above = reader.data.get("done_above", [])
    if not isinstance(above, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**63 for i in above
    ):
        raise reader.fail("done_above", "must be a list of non-negative integers")
    labels = reader.obj("labels")
    if not all(
        isinstance(v, str) and k.isascii() and k.isdigit() and len(k) <= 19
        for k, v in labels.items()
    ):
        raise reader.fail("labels", "must map indices (decimal digits) to strings")
    return CompletionWindow.from_dict(
        {
            "watermark": watermark,
            "done_above": above,
            "prefix_item": reader.string("prefix_item"),
            "labels": labels,
        }
    )


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Seed 003's format: no version, no window; ``last_processed_index`` was the resume point.

    Seed 003 processed items in order and resumed after ``last_processed_index``, so every index
    up to and including it is done.
    """
    migrated = dict(data)
    last_index = data.get("last_processed_index")
    if "completion" not in migrated:
        watermark = last_index + 1 if isinstance(last_index, int) and last_index >= 0 else 0
        migrated["completion"] = {
            "watermark": watermark,
            "done_above": [],
            "prefix_item": data.get("last_processed_item"),
        }
    migrated["schema_version"] = SCHEMA_VERSION
    return migrated


def _migrate_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2: the same fields; the string times had no zone (they were UTC)."""
    migrated = dict(data)
    for key in ("created_at", "updated_at", "last_error_time"):
        if isinstance(migrated.get(key), str):
            migrated[key] = _with_z(migrated[key])
    errors = migrated.get("recent_errors")
    if isinstance(errors, list):
        migrated["recent_errors"] = [
            {**e, "time": _with_z(e["time"])}
            if isinstance(e, dict) and isinstance(e.get("time"), str)
            else e
            for e in errors
        ]
    migrated["schema_version"] = SCHEMA_VERSION
    return migrated


def parse_checkpoint(
    data: Any, *, path: Path | None = None, stage: str | None = None
) -> tuple[CheckpointState, bool]:
    """Validate a decoded checkpoint and build its state.

    Returns the state and whether it was migrated from an older format. Raises
    :class:`CheckpointSchemaError` naming the file and field on anything it cannot trust.
    """
    if not isinstance(data, dict):
        raise CheckpointSchemaError(
            f"checkpoint file {path}: expected a JSON object, found {type(data).__name__}",
            stage=stage,
            path=path,
        )
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointSchemaError(
            f"checkpoint file {path}: schema_version must be a positive integer, got {version!r}",
            stage=stage,
            path=path,
        )
    if version > SCHEMA_VERSION:
        raise CheckpointSchemaError(
            f"checkpoint file {path} was written by a newer version (schema {version}; this one "
            f"reads up to {SCHEMA_VERSION}): upgrade, or reset the stage",
            stage=stage,
            path=path,
        )
    migrated = version < SCHEMA_VERSION
    if version < 2:
        data = _migrate_v1(data)
    if migrated:
        data = _migrate_v2(data)
    r = _Reader(data, path, stage, "")
    name = r.string("stage", required=True)
    assert name is not None
    if stage is not None and name != stage:
        raise r.fail("stage", f"is {name!r} but the file belongs to stage {stage!r}")
    raw_status = r.string("status", required=True)
    assert raw_status is not None
    try:
        status = CheckpointStatus(raw_status)
    except ValueError:
        known = ", ".join(s.value for s in CheckpointStatus)
        raise r.fail("status", f"is {raw_status!r}, not one of {known}") from None

    p = r.sub("progress")
    progress = ProgressState(
        total_items=p.integer("total_items"),
        processed_items=p.integer("processed_items"),
        successful_items=p.integer("successful_items"),
        failed_items=p.integer("failed_items"),
        skipped_items=p.integer("skipped_items"),
        start_time=p.timestamp("start_time"),
        last_update_time=p.timestamp("last_update_time"),
        estimated_completion_time=p.number("estimated_completion_time"),
        active_seconds=max(0.0, p.number("active_seconds") or 0.0),
    )
    if progress.successful_items + progress.failed_items > progress.processed_items + (
        progress.skipped_items
    ):
        raise p.fail(
            "successful_items",
            f"plus failed_items ({progress.successful_items}+{progress.failed_items}) exceeds "
            f"processed_items ({progress.processed_items})",
        )

    errors: list[ErrorRecord] = []
    raw_errors = data.get("recent_errors", [])
    if not isinstance(raw_errors, list):
        raise r.fail("recent_errors", "must be a list")
    for entry in raw_errors[-MAX_RECENT_ERRORS:]:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("time", "message")
        ):
            raise r.fail("recent_errors", "entries must be {time, message} strings")
        errors.append(ErrorRecord(entry["time"], entry["message"]))

    parts: dict[str, PartProgress] = {}
    for part_name, part_data in r.obj("parts").items():
        pr = r.sub("parts").sub(part_name)
        if not isinstance(part_data, dict):
            raise r.fail(f"parts.{part_name}", "must be an object")
        total = pr.optional_integer("total")
        parts[part_name] = PartProgress(
            name=part_name,
            total=total,
            finished=bool(part_data.get("finished", False)),
            window=_parse_window(pr),
        )

    journals: dict[str, int] = {}
    jr = r.sub("journals")
    for journal_name in jr.data:
        if not _JOURNAL_NAME.fullmatch(journal_name):
            raise jr.fail(journal_name, "is not a journal name (letters, digits, '_', '-')")
        journals[journal_name] = jr.integer(journal_name, None)

    metadata = r.obj("metadata")
    state = CheckpointState(
        stage=name,
        status=status,
        progress=progress,
        last_processed_item=_display_string(r, "last_processed_item"),
        last_processed_index=r.optional_integer("last_processed_index"),
        batch_id=r.integer("batch_id", minimum=-1) if data.get("batch_id") is not None else 0,
        input_file=r.string("input_file"),
        input_file_hash=r.string("input_file_hash"),
        input_file_size=r.optional_integer("input_file_size"),
        output_file=r.string("output_file"),
        config_hash=r.string("config_hash"),
        created_at=r.string("created_at") or "",
        updated_at=r.string("updated_at") or "",
        error_message=r.string("error_message"),
        error_count=r.integer("error_count"),
        last_error_time=r.string("last_error_time"),
        recent_errors=errors,
        metadata=metadata,
        completion=_parse_window(r.sub("completion")),
        parts=parts,
        journals=journals,
        keys_done=r.integer("keys_done"),
        run_count=r.integer("run_count"),
        recoveries=r.integer("recoveries"),
        schema_version=SCHEMA_VERSION,
    )
    return state, migrated


def _display_string(reader: _Reader, key: str) -> str | None:
    # Seed files sometimes hold ids (numbers) here; keep them readable as text.
    value = reader.data.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise reader.fail(key, f"must be a string or a number, not {type(value).__name__}")
