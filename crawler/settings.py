"""Scrapy settings of the pipeline's crawl stages (``scrapy crawl discovery`` / ``validation``).

Checkpointing is on: the middleware tracks progress, the scheduler keeps a frontier that
survives SIGKILL, the pipeline writes each record exactly once. Tuned for a single-site crawl
(one domain, so the per-domain limit is the global one). Code-executing consoles (telnet,
RemoteControl) and pickling components (JOBDIR spider state) are off.
"""

from __future__ import annotations

BOT_NAME = "resumable_crawl"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
# `scrapy crawl` exits non-zero when the checkpoint refused the start or the stage failed.
COMMANDS_MODULE = "common.scrapy.commands"

# Where stage outputs go: <DATA_DIR>/processed/stage01/..., checkpoints in CHECKPOINT_DIR.
DATA_DIR = "data"

DOWNLOADER_MIDDLEWARES = {
    "common.checkpoint_middleware.CheckpointMiddleware": 100,
    # Scrapy's own lets requests that waited for robots.txt through unchecked (see the class).
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.middlewares.ReliableRobotsTxtMiddleware": 101,
}
SCHEDULER = "common.scrapy.scheduler.CheckpointScheduler"
ITEM_PIPELINES = {"common.scrapy.pipeline.CheckpointPipeline": 900}
CHECKPOINT_ENABLED = True
# Off unless CHECKPOINT_REDIS_URL is set: then the frontier is shared through Redis (docs/redis.md).
ADDONS = {"common.scrapy.redis_addon.RedisFrontierAddon": 0}
CHECKPOINT_DIR = "data/checkpoints"
# Saves follow the work (a save every 100 items, at most every 0.25 s, at least every 2 s), not
# the clock: each save costs a few ms of CPU however little it carries (common.scrapy.runtime).
CHECKPOINT_AUTO_SAVE_INTERVAL = 100
CHECKPOINT_SAVE_EVERY_SECONDS = 2.0

ROBOTSTXT_OBEY = True
USER_AGENT = "resumable-crawl (+https://example.invalid/bot)"
DEPTH_LIMIT = 10
# Breadth-first, level by level: a page is first reached along a shortest path, so its recorded
# depth and the set of pages found under DEPTH_LIMIT do not depend on the order responses
# happen to arrive in (common.scrapy.levels).
SCHEDULER_PRIORITY_QUEUE = "common.scrapy.levels.BreadthFirstQueue"
DEPTH_PRIORITY = 1
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"

# Throughput for one site: all concurrency on the one domain, no artificial delay.
CONCURRENT_REQUESTS = 32
CONCURRENT_REQUESTS_PER_DOMAIN = 32
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 30
RETRY_TIMES = 2
REACTOR_THREADPOOL_MAXSIZE = 4
# Scrapy starts CONCURRENT_ITEMS asyncio tasks for every response's callback output (100 by
# default: ~200,000 tasks for a 2,000-page crawl). Our pipelines never wait on I/O, so 16 loses
# nothing and cut the crawl's CPU time by about a fifth here (python -m tools.bench crawl).
CONCURRENT_ITEMS = 16
# Scrapy spends a large share of a fast crawl in the cyclic garbage collector; see
# crawler.extensions.GcTuning.
GC_THRESHOLD = (50_000, 20, 20)
# Scrapy checks every response's callback for a generator that returns a value, re-reading and
# re-parsing its source whenever the bound method it cached has been freed: up to one response
# in four in validation, 0.2-0.5 ms each. tests/test_crawl_settings.py runs the same check on
# this project's spiders once instead.
WARN_ON_GENERATOR_RETURN_VALUE = False
EXTENSIONS = {
    "crawler.extensions.GcTuning": 0,
    "scrapy.extensions.telnet.TelnetConsole": None,
    "scrapy.extensions.spiderstate.SpiderState": None,
}
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

LOG_LEVEL = "INFO"
LOGSTATS_INTERVAL = 10.0
FEED_EXPORT_ENCODING = "utf-8"
