"""Checkpoint stores: where records live. JSON files by default."""

from __future__ import annotations

from common.stores.base import CheckpointStore, HistoryEntry, LoadedRecord, validate_stage_name
from common.stores.json_file import JsonFileStore

__all__ = [
    "CheckpointStore",
    "HistoryEntry",
    "JsonFileStore",
    "LoadedRecord",
    "validate_stage_name",
]
