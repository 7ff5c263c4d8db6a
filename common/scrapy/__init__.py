"""The engine inside Scrapy: switched on from settings, never imported by the engine itself.

- :mod:`common.scrapy.middleware`: ``CheckpointMiddleware`` (downloader middleware, seed 003)
- :mod:`common.scrapy.scheduler`: ``CheckpointScheduler``, the crash-safe frontier
- :mod:`common.scrapy.pipeline`: ``CheckpointPipeline``, exactly-once item output
- :mod:`common.scrapy.runtime`: ``CrawlCheckpoint``, the state the three share, and the settings
- :mod:`common.scrapy.redis_scheduler`: the frontier shared by many workers through Redis

The seed's paths (``common.checkpoint_middleware``, ``common.scrapy_frontier``,
``common.scrapy_pipeline``) keep working.
"""
