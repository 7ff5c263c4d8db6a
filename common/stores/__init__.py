"""Checkpoint stores: where records live. JSON files by default."""

from __future__ import annotations

from common.stores.base import (
    CheckpointStore,
    HistoryEntry,
    KeySet,
    LoadedRecord,
    StagedRows,
    validate_stage_name,
)
from common.stores.factory import STORE_KINDS, detect_store, open_store
from common.stores.json_file import JsonFileStore
from common.stores.sqlite import SqliteStore

__all__ = [
    "STORE_KINDS",
    "CheckpointStore",
    "HistoryEntry",
    "JsonFileStore",
    "KeySet",
    "LoadedRecord",
    "SqliteStore",
    "StagedRows",
    "detect_store",
    "open_store",
    "validate_stage_name",
]
