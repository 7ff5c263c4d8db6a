"""pytest plugin (``-p tools.scrapy_compat.plugin``): the three checkpoint components on as
defaults for every crawler Scrapy's tests build.

Scrapy's ``Settings`` read :mod:`scrapy.settings.default_settings` on construction, so the
plugin adds to it: the middleware to ``DOWNLOADER_MIDDLEWARES_BASE``, the pipeline to
``ITEM_PIPELINES_BASE``, ``CheckpointScheduler`` as ``SCHEDULER`` and ``CHECKPOINT_ENABLED``.
Each test gets a fresh ``CHECKPOINT_DIR``, ``DATA_DIR`` and ``CHECKPOINT_OUTPUT_FILE``. What the
components did in each test (crawls opened, final statuses, ``checkpoint/*`` stats, files) is
appended as one JSON line to ``$SCRAPY_COMPAT_REPORT``, so the run can show they really ran.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scrapy.settings import default_settings

from common.scrapy.runtime import CrawlCheckpoint

MIDDLEWARE = "common.scrapy.middleware.CheckpointMiddleware"
PIPELINE = "common.scrapy.pipeline.CheckpointPipeline"
SCHEDULER = "common.scrapy.scheduler.CheckpointScheduler"

default_settings.CHECKPOINT_ENABLED = True  # type: ignore[attr-defined]
default_settings.SCHEDULER = SCHEDULER
default_settings.DOWNLOADER_MIDDLEWARES_BASE = {
    **default_settings.DOWNLOADER_MIDDLEWARES_BASE,
    MIDDLEWARE: 100,
}
default_settings.ITEM_PIPELINES_BASE = {**default_settings.ITEM_PIPELINES_BASE, PIPELINE: 900}

_CRAWLS: list[dict[str, Any]] = []
_original_closed = CrawlCheckpoint.spider_closed


async def _record_closed(self: CrawlCheckpoint, spider: Any, reason: str) -> None:
    await _original_closed(self, spider, reason)
    stats = self.crawler.stats.get_stats() if self.crawler.stats is not None else {}
    _CRAWLS.append(
        {
            "opened": self.checkpoint is not None,
            "status": self.checkpoint.status.value if self.checkpoint is not None else None,
            "reason": reason,
            "stats": sorted(k for k in stats if k.startswith("checkpoint/")),
            "items_written": int(stats.get("checkpoint/items_written", 0)),
            "requests_journaled": int(stats.get("checkpoint/requests_journaled", 0)),
        }
    )


CrawlCheckpoint.spider_closed = _record_closed  # type: ignore[method-assign]


_NAMES = ("CHECKPOINT_DIR", "DATA_DIR", "CHECKPOINT_OUTPUT_FILE")
_current: dict[str, Path] = {}


# Hooks, not a fixture: this module is loaded with -p and imports nothing from pytest (it is not
# one of this project's runtime dependencies).
def pytest_runtest_setup(item: Any) -> None:
    base = Path(tempfile.mkdtemp(prefix="checkpointed-"))
    _current["base"] = base
    values = (base / "checkpoints", base / "data", base / "data" / "output.jsonl")
    for name, value in zip(_NAMES, values, strict=True):
        setattr(default_settings, name, str(value))
    _CRAWLS.clear()


def _hook_options(**options: bool) -> dict[str, Any]:
    """What ``@pytest.hookimpl(...)`` records on a function (pluggy's ``HookimplOpts``)."""
    return {
        "wrapper": False,
        "hookwrapper": False,
        "optionalhook": False,
        "tryfirst": False,
        "trylast": False,
        "specname": None,
        **options,
    }


# Before the test's fixtures are set up (they may build crawlers), after they are torn down.
pytest_runtest_setup.pytest_impl = _hook_options(tryfirst=True)  # type: ignore[attr-defined]


def pytest_runtest_teardown(item: Any, nextitem: Any) -> None:
    for name in _NAMES:
        if hasattr(default_settings, name):
            delattr(default_settings, name)
    base = _current.pop("base", None)
    if base is None:
        return
    report = os.environ.get("SCRAPY_COMPAT_REPORT")
    if report:
        output = base / "data" / "output.jsonl"
        line = {
            "test": item.nodeid,
            "crawls": list(_CRAWLS),
            "checkpoint_files": sorted(p.name for p in (base / "checkpoints").glob("*.json")),
            "output_lines": len(output.read_bytes().splitlines()) if output.exists() else 0,
        }
        with Path(report).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    shutil.rmtree(base, ignore_errors=True)


pytest_runtest_teardown.pytest_impl = _hook_options(trylast=True)  # type: ignore[attr-defined]
