"""The checkpoint engine shared by every stage.

``EnhancedCheckpoint`` holds one stage's state and persists it atomically;
``UnifiedCheckpointManager`` sees every stage of a pipeline; ``AsyncCheckpointTracker`` wraps an
async loop; ``common.scrapy.middleware.CheckpointMiddleware`` plugs the engine into Scrapy.
"""

from __future__ import annotations

from common.checkpoint import EnhancedCheckpoint
from common.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointLockedError,
    CheckpointSaveError,
    CheckpointSchemaError,
    ConfigChangedError,
    InputChangedError,
    InputInvalidError,
    InvalidStageNameError,
    InvalidTransitionError,
    OutputConflictError,
    StageNotFoundError,
)
from common.manager import StageInfo, UnifiedCheckpointManager
from common.progress import ProgressSnapshot
from common.status import CheckpointStatus
from common.stores import CheckpointStore, JsonFileStore
from common.tracker import AsyncCheckpointTracker, Batch

__all__ = [
    "AsyncCheckpointTracker",
    "Batch",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointSaveError",
    "CheckpointSchemaError",
    "CheckpointStatus",
    "CheckpointStore",
    "ConfigChangedError",
    "EnhancedCheckpoint",
    "InputChangedError",
    "InputInvalidError",
    "InvalidStageNameError",
    "InvalidTransitionError",
    "JsonFileStore",
    "OutputConflictError",
    "ProgressSnapshot",
    "StageInfo",
    "StageNotFoundError",
    "UnifiedCheckpointManager",
]
