"""Settings path kept for existing projects: ``SCHEDULER = "common.scrapy_frontier.CheckpointScheduler"``.

The scheduler lives in :mod:`common.scrapy.scheduler`.
"""

from __future__ import annotations

from common.scrapy.scheduler import CheckpointScheduler

__all__ = ["CheckpointScheduler"]
