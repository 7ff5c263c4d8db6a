"""Scrapy integration of the checkpoint engine, and the async tracker (seed 003's import path).

``from common.checkpoint_middleware import CheckpointMiddleware, AsyncCheckpointTracker``
"""

from __future__ import annotations

from common.tracker import AsyncCheckpointTracker

__all__ = ["AsyncCheckpointTracker"]
