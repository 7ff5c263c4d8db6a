"""``CheckpointPipeline``: writes each item once, committed with the stage checkpoint.

::

    ITEM_PIPELINES = {"common.scrapy.pipeline.CheckpointPipeline": 900}

Items are keyed by their ``CHECKPOINT_ITEM_KEY`` field (``url`` by default), so a request redone
after a crash cannot write its key twice. An item whose ``ok`` field is false counts as failed,
and one with an ``error`` also goes to the ``.failed.jsonl`` sidecar for a later retry.

The pipeline never changes what later pipelines, feeds and stats see: every item is returned
as it came. Items it cannot write are counted and passed on: without the key field
(``checkpoint/items_keyless``), not JSON-serialisable (``checkpoint/items_unserializable``), or
with no output file configured (``checkpoint/items_unwritten``; they still count as progress).
The first keyless item and the first unserialisable one each log a WARNING (the key field,
the item's fields, ``CHECKPOINT_ITEM_KEY``): a crawl writing nothing should not look done.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured

from common.errors import CheckpointError
from common.scrapy.known_settings import disabled_reason
from common.scrapy.runtime import CrawlCheckpoint
from common.status import CheckpointStatus

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["CheckpointPipeline", "item_record"]

logger = logging.getLogger("common.scrapy")


def item_record(item: Any) -> dict[str, Any]:
    """The output record of a scraped item (dataclass, dict or any itemadapter item)."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        # A shallow copy: records are JSON-encoded right away, no deep copy needed.
        return dict(vars(item)) if hasattr(item, "__dict__") else dataclasses.asdict(item)
    if isinstance(item, dict):
        return dict(item)
    return ItemAdapter(item).asdict()


class CheckpointPipeline:
    """Item pipeline writing through the checkpoint's exactly-once output journal."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.runtime = CrawlCheckpoint.for_crawler(crawler)
        self._warned: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CheckpointPipeline:
        if not crawler.settings.getbool("CHECKPOINT_ENABLED"):
            raise NotConfigured(disabled_reason(crawler.settings))
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        runtime = self.runtime
        checkpoint = runtime.checkpoint
        if checkpoint is None or checkpoint.status is not CheckpointStatus.RUNNING:
            return item  # refused, or items from a spider closing: nothing to record them in
        if not ItemAdapter.is_item(item):
            return item  # not an item Scrapy's own pipelines would handle either
        record = item_record(item)
        ok = bool(record.get("ok", True))
        if not runtime.output_attached:
            checkpoint.update(processed=1, successful=1 if ok else 0, failed=0 if ok else 1)
            self._count("checkpoint/items_unwritten")
            return item
        key = record.get(runtime.item_key)
        if key is None:
            self._count("checkpoint/items_keyless")
            fields = ", ".join(map(repr, record)) or "none"
            self._warn_once(
                "keyless",
                f"items without a {runtime.item_key!r} field are not written to "
                f"{runtime.output_file} (they pass through, counted as checkpoint/items_keyless); "
                f"this one's fields: {fields}. Set CHECKPOINT_ITEM_KEY to the field that "
                "identifies an item",
            )
            return item
        try:
            written = runtime.write_record(
                record, str(key), ok=ok, failed=bool(record.get("error"))
            )
        except CheckpointError:
            raise
        except (TypeError, ValueError) as exc:
            # update() encodes the record before it changes anything (it encodes it once, for
            # the journal): a record JSON cannot encode leaves its key not done and no count.
            self._count("checkpoint/items_unserializable")
            self._warn_once(
                "unserializable",
                f"items that are not JSON-serialisable pass through unwritten ({exc})",
            )
            return item
        self._count("checkpoint/items_written" if written else "checkpoint/items_duplicate")
        return item

    def _count(self, key: str) -> None:
        stats = self.crawler.stats
        if stats is not None:
            stats.inc_value(key)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("CheckpointPipeline: %s", message)
