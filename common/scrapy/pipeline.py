"""``CheckpointPipeline``: writes each item once, committed with the stage checkpoint.

::

    ITEM_PIPELINES = {"common.scrapy.pipeline.CheckpointPipeline": 900}

Items must carry a ``url``; they are keyed by it, so a request redone after a crash cannot
write its URL twice. An item whose ``ok`` field is false counts as failed, and one with an
``error`` also goes to the ``.failed.jsonl`` sidecar for a later retry.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured

from common.scrapy.runtime import CrawlCheckpoint

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["CheckpointPipeline", "item_record"]


def item_record(item: Any) -> dict[str, Any]:
    """The output record of a scraped item (dataclass, dict or any itemadapter item).

    Raises ``ValueError`` if it has no ``url``: records are keyed by it.
    """
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        # A shallow copy: records are JSON-encoded right away, no deep copy needed.
        record = dict(vars(item)) if hasattr(item, "__dict__") else dataclasses.asdict(item)
    elif isinstance(item, dict):
        record = dict(item)
    else:
        record = ItemAdapter(item).asdict()
    if "url" not in record:
        raise ValueError(f"items written by the checkpoint need a 'url' field: {record!r}")
    return record


class CheckpointPipeline:
    """Item pipeline writing through the checkpoint's exactly-once output journal."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.runtime = CrawlCheckpoint.for_crawler(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CheckpointPipeline:
        if not crawler.settings.getbool("CHECKPOINT_ENABLED"):
            raise NotConfigured("CHECKPOINT_ENABLED is off")
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        record = item_record(item)
        ok = bool(record.get("ok", True))
        written = self.runtime.write_record(record, ok=ok, failed=bool(record.get("error")))
        stats = self.crawler.stats
        if stats is not None:
            stats.inc_value("checkpoint/items_written" if written else "checkpoint/items_duplicate")
        return item
