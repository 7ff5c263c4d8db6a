"""Seed 003's import path: ``DOWNLOADER_MIDDLEWARES = {"common.checkpoint_middleware.CheckpointMiddleware": 100}``.

The middleware lives in :mod:`common.scrapy.middleware`; ``AsyncCheckpointTracker`` is importable
from here too, as in the seed.
"""

from __future__ import annotations

from common.scrapy.middleware import CheckpointMiddleware
from common.tracker import AsyncCheckpointTracker

__all__ = ["AsyncCheckpointTracker", "CheckpointMiddleware"]
