"""The engine inside Scrapy: switched on from settings, never imported by the engine itself.

- :mod:`common.scrapy.middleware`: ``CheckpointMiddleware`` (downloader middleware, seed 003)
- :mod:`common.scrapy.scheduler`: ``CheckpointScheduler``, the crash-safe frontier
- :mod:`common.scrapy.pipeline`: ``CheckpointPipeline``, exactly-once item output
- :mod:`common.scrapy.runtime`: ``CrawlCheckpoint``, the state the three share, the settings and
  the close reasons
- :mod:`common.scrapy.identity`: what makes two crawls the same crawl (the config guard)
- :mod:`common.scrapy.levels`: ``BreadthFirstQueue``, breadth-first one depth level at a time
- :mod:`common.scrapy.redis_scheduler`: the frontier shared by many workers through Redis

The seed's paths (``common.checkpoint_middleware``, ``common.scrapy_frontier``,
``common.scrapy_pipeline``) keep working.
"""
