"""Settings path kept for existing projects: ``ITEM_PIPELINES = {"common.scrapy_pipeline.CheckpointPipeline": 900}``.

The pipeline lives in :mod:`common.scrapy.pipeline`.
"""

from __future__ import annotations

from common.scrapy.pipeline import CheckpointPipeline

__all__ = ["CheckpointPipeline"]
