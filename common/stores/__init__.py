"""Checkpoint stores: where records live. JSON files by default."""

from __future__ import annotations

from common.stores.base import CheckpointStore, HistoryEntry, LoadedRecord, validate_stage_name
from common.stores.factory import STORE_KINDS, open_store
from common.stores.json_file import JsonFileStore

__all__ = [
    "STORE_KINDS",
    "CheckpointStore",
    "HistoryEntry",
    "JsonFileStore",
    "LoadedRecord",
    "open_store",
    "validate_stage_name",
]
