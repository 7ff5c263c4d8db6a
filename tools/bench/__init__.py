"""Benchmarks, load and chaos runs, on demand: ``python -m tools.bench NAME [options]``.

Every figure is printed against a baseline measured in the same run.

=========  ======================================================================
engine     ``update()``, save latency vs items done, resume time (:mod:`.stages`)
tracker    the tracker vs a bare async loop; event-loop stalls (:mod:`.stages`)
enrich     stage 3 vs a bare aiohttp loop doing the same work (:mod:`.stages`)
pipeline   whole pipeline: checkpointing on vs off; five SIGKILLs (:mod:`.pipeline`)
crawl      crawl vs stock Scrapy; SIGKILL at 20-80%, ours vs JOBDIR (:mod:`.crawl`)
sqlite     1M done keys: SQLite store vs JSON store (:mod:`.sqlite`)
workers    1/2/4 PostgreSQL workers; claim/commit latency; takeover (:mod:`.workers`)
redis      local frontier vs 1 and 2 Redis workers (:mod:`.redis`)
load       100k URLs with transient failures; peak RSS vs 20k (:mod:`.load`)
chaos      SIGKILLs of the whole pipeline vs an uninterrupted run (:mod:`.chaos`)
=========  ======================================================================
"""
