"""A crawl frontier in Redis shared by Scrapy workers on many machines (docs/redis.md).

:mod:`common.redis.frontier` holds the leases and the Lua scripts; :mod:`common.redis.pump`
moves requests between Scrapy's scheduler and Redis off the reactor thread. Scrapy's side is
:mod:`common.scrapy.redis_scheduler`.
"""
