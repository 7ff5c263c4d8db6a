"""Scrapy across machines: a crawl frontier and dupefilter shared through Redis.

Set ``CHECKPOINT_REDIS_URL`` (and ``CHECKPOINT_REDIS_PREFIX`` to name the crawl) and every
``scrapy crawl`` process given the same prefix works on one frontier, on any machine::

    scrapy crawl discovery -a start_url=URL \\
        -s CHECKPOINT_REDIS_URL=redis://host:6379/0 -s CHECKPOINT_REDIS_PREFIX=name

The project enables :class:`~common.scrapy.redis_addon.RedisFrontierAddon` in ``ADDONS`` (also
re-exported here, the older path, which loads redis even for a crawl without it); it does
nothing unless ``CHECKPOINT_REDIS_URL`` is set, and then swaps in :class:`RedisScheduler` with
:class:`RedisDupeFilter`, adds :class:`RedisLineageMiddleware`, and takes out the local
checkpoint (middleware and pipeline): the crawl's state lives in Redis, see
:mod:`common.redis.frontier`.

How a page is recorded exactly once: the scheduler leases requests from Redis; the records the
page produces (``item_scraped``) and the requests it finds (tagged by the lineage middleware)
are held with its lease, and once Scrapy has completely finished with the request they are
sent in one acknowledgement that Redis applies only if the lease is still held. A worker that
dies loses its leases when they expire, and another worker fetches those pages again. Retries
and redirects stay with the worker that holds the lease. All Redis calls go through one thread
(:class:`common.redis.pump.RedisPump`); the reactor never waits on the network.

Settings: ``CHECKPOINT_REDIS_URL``; ``CHECKPOINT_REDIS_PREFIX`` (default: the stage name);
``CHECKPOINT_REDIS_LEASE_SECONDS`` (30); ``CHECKPOINT_REDIS_PREFETCH`` (requests leased ahead,
default half of ``CONCURRENT_REQUESTS``); ``CHECKPOINT_REDIS_POLL_SECONDS`` (0.2, how often an
idle worker looks for work); ``CHECKPOINT_FRESH`` (delete the crawl's keys first);
``CHECKPOINT_FORCE`` (join a crawl started with another configuration);
``CHECKPOINT_OUTPUT_FILE``: where the worker that sees the crawl finish exports the records
(default ``redis/PREFIX/`` beside the folder of the spider's ``checkpoint_output_file``:
:func:`common.redis.frontier.default_output`); a file a stage of the local ``CHECKPOINT_DIR`` keeps
(its output, sidecar or checkpoint file) is refused at the start, before anything is fetched or
changed in Redis, unless this crawl exported to it before.

Why one module of ~600 lines: :class:`RedisScheduler` is one state machine. The engine's calls
(``enqueue_request``, ``next_request``), Scrapy's signals (``item_scraped``, ``spider_idle``)
and the pump's results (``_synced``) all read and write the same reactor-side fields: the
leases and what each page produced, the buffer of leased requests, the retries and redirects,
the pushes and acknowledgements not yet sent. Every rule that records a page exactly once is
about their order; split by method, those fields would be shared across modules. The parts
with a job of their own live apart: the add-on, dupefilter and lineage middleware
(:mod:`common.scrapy.redis_addon`), the frontier's Redis side (:mod:`common.redis.frontier`),
the pump thread (:mod:`common.redis.pump`), the request encoding (:mod:`common.scrapy.requests`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, DontCloseSpider
from scrapy.http import Response
from scrapy.utils.request import request_from_dict
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from common.errors import CheckpointError
from common.hashing import config_hash, file_sha256
from common.progress import eta_seconds, format_duration, percent_complete, throughput
from common.redis.frontier import (
    Ack,
    CommitResult,
    LeaseResult,
    NewRequest,
    RedisFrontier,
    default_output,
    export_records,
    refuse_a_local_stage_file,
    safe_url,
)
from common.redis.pump import RedisPump
from common.scrapy.known_settings import misspelt_settings, warn_unread
from common.scrapy.pipeline import item_record
from common.scrapy.redis_addon import (
    LEASE_META,
    PARENT_META,
    RedisDupeFilter,
    RedisFrontierAddon,
    RedisLineageMiddleware,
)
from common.scrapy.requests import (
    RequestEncoder,
    compact_request_dict,
    from_json_safe,
    is_replacement_of,
    to_json_safe,
)

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

__all__ = [
    "RedisDupeFilter",
    "RedisFrontierAddon",
    "RedisLineageMiddleware",
    "RedisScheduler",
]

logger = logging.getLogger("common.redis")


@dataclass
class _Lease:
    """A request this worker holds in Redis, and what it produced so far."""

    request_id: str
    request: Request | None = None  # the object handed to the engine (the latest replacement)
    replacements: int = 0  # retries/redirects queued locally, not yet handed out
    records: list[tuple[str, str]] = field(default_factory=list)
    children: list[NewRequest] = field(default_factory=list)


class RedisScheduler:
    """Scrapy scheduler on a :class:`~common.redis.frontier.RedisFrontier`."""

    def __init__(
        self,
        crawler: Crawler,
        frontier: RedisFrontier | None,
        dupefilter: RedisDupeFilter,
        *,
        settings_error: str | None = None,
    ) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self._frontier = frontier
        self.settings_error = settings_error
        self.df = dupefilter
        self.prefetch = max(
            1,
            settings.getint(
                "CHECKPOINT_REDIS_PREFETCH", settings.getint("CONCURRENT_REQUESTS", 16) // 2
            ),
        )
        self.poll_seconds = settings.getfloat("CHECKPOINT_REDIS_POLL_SECONDS", 0.2)
        self.fresh = settings.getbool("CHECKPOINT_FRESH")
        self.force = settings.getbool("CHECKPOINT_FORCE")
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.buffer: deque[tuple[str, Request]] = deque()
        self.replacements: deque[Request] = deque()
        self.leases: dict[str, _Lease] = {}
        self.pushes: list[NewRequest] = []
        self.acks: list[Ack] = []
        self.view: LeaseResult | None = None
        self.done = False
        self.refused = False
        # Set by spider_idle: only then can this worker be sure it will push nothing more.
        self.engine_idle = False
        self.exported_here = False
        self._job_running = False
        self._encoder: RequestEncoder | None = None
        self._poller: LoopingCall | None = None
        self._pump: RedisPump | None = None
        self._failures = 0
        self.log_interval = settings.getfloat("LOGSTATS_INTERVAL", 60.0)
        self._progress_mark = (0.0, 0)
        self._lost = False  # set by the pump thread's heartbeat
        self.closing = False
        self.spider: Spider | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        url = settings.get("CHECKPOINT_REDIS_URL")
        if not url:
            raise ValueError("RedisScheduler needs CHECKPOINT_REDIS_URL (redis://host:port/db)")
        prefix = settings.get("CHECKPOINT_REDIS_PREFIX") or _default_prefix(crawler)
        frontier, error = None, None
        # As a local crawl's start does (the add-on took its component out): a misspelt
        # CHECKPOINT_REDIS_PREFX would join the crawl of the default prefix.
        warn_unread(settings, logger)
        misspelt = misspelt_settings(settings)
        if misspelt is not None:
            error = (
                f"Redis crawl: {misspelt}; no component reads it (the README's settings table "
                "lists those that exist) (nothing was changed)"
            )
        try:
            lease = settings.getfloat("CHECKPOINT_REDIS_LEASE_SECONDS", 30.0)
            frontier = RedisFrontier(url, prefix, lease_seconds=lease)
        except ValueError as exc:
            # Reported as one error line once the spider is open (see open()), not a traceback.
            error = error or (
                f"Redis frontier settings: {exc} (CHECKPOINT_REDIS_URL={safe_url(url)})"
            )
        dupefilter = RedisDupeFilter.from_crawler(crawler)
        scheduler = cls(crawler, frontier, dupefilter, settings_error=error)
        crawler.signals.connect(scheduler._item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(scheduler._spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(scheduler._spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(scheduler._spider_opened, signal=signals.spider_opened)
        return scheduler

    @property
    def frontier(self) -> RedisFrontier:
        assert self._frontier is not None, "the Redis frontier settings were refused"
        return self._frontier

    @property
    def stats(self) -> StatsCollector:
        assert self.crawler.stats is not None
        return self.crawler.stats

    # Opening -------------------------------------------------------------------------------------

    def open(self, spider: Spider) -> Deferred[None] | None:
        from twisted.internet import reactor

        self.spider = spider
        if self.settings_error is not None:
            logger.error("%s", self.settings_error)
            self.done = self.refused = True
            return None
        self._pump = RedisPump(
            reactor,
            name=f"redis-pump-{self.frontier.prefix}",
            idle_interval=self.frontier.lease_ms / 3000,
            on_idle=self._heartbeat,
        )
        self._pump.start()
        deferred = self._pump.submit(self._register, spider)
        deferred.addCallbacks(self._opened, self._refused)
        return deferred

    def _register(self, spider: Spider) -> str:
        """Pump thread: join the crawl, refused if it was started with another configuration.

        The configuration is the spider's ``checkpoint_config`` plus the hash of its input
        file (``CHECKPOINT_INPUT_FILE`` or the spider's ``checkpoint_input_file``): every worker
        must crawl the same thing.
        """
        config = dict(getattr(spider, "checkpoint_config", None) or {"spider": spider.name})
        input_file = self.crawler.settings.get("CHECKPOINT_INPUT_FILE") or getattr(
            spider, "checkpoint_input_file", None
        )
        if input_file:
            config["input_sha256"] = file_sha256(input_file)
        output = self._output_file()
        if output:
            self._refuse_a_local_stage_file(output)
        if self.fresh:
            removed = self.frontier.delete()
            if removed:
                logger.warning("CHECKPOINT_FRESH: deleted the Redis crawl %r", self.frontier.prefix)
        return self.frontier.register(self.token, config_hash(config), force=self.force)

    def _refuse_a_local_stage_file(self, output: str) -> None:
        """Pump thread, before the crawl's keys change: refuse an output file a stage of the
        local checkpoint directory (``CHECKPOINT_DIR``) keeps, unless this crawl exported to it
        before (:func:`~common.redis.frontier.refuse_a_local_stage_file`).

        At the start, not at the export: a crawl refused at its end would have fetched every
        page for nothing, and the local stage's finished records would already be on the way
        to being replaced by another crawl's."""
        directory = self.crawler.settings.get("CHECKPOINT_DIR") or "data/checkpoints"
        try:
            refuse_a_local_stage_file(
                self.frontier,
                output,
                directory,
                remedy="set CHECKPOINT_OUTPUT_FILE to another file (nothing was changed)",
            )
        except CheckpointError as exc:
            raise CheckpointError(
                f"Redis crawl {self.frontier.prefix!r}: {exc}", stage=exc.stage, path=exc.path
            ) from None

    def _output_file(self) -> str | None:
        """Where the worker that sees the end exports the records: ``CHECKPOINT_OUTPUT_FILE``,
        else a file of the crawl's own beside the spider's stage output
        (:func:`~common.redis.frontier.default_output`); None: nowhere."""
        chosen = self.crawler.settings.get("CHECKPOINT_OUTPUT_FILE")
        if chosen:
            return str(chosen)
        stage_output = getattr(self.spider, "checkpoint_output_file", None)
        if not stage_output:
            return None
        return str(default_output(stage_output, self.frontier.prefix))

    def _heartbeat(self) -> None:
        """Pump thread, when no job ran for a third of the lease: renew it."""
        if self.frontier.lease(self.token, 0).lost:
            self._lost = True

    def _opened(self, state: str) -> None:
        logger.info(
            "Redis frontier %r at %s: worker %s joined (%s)",
            self.frontier.prefix,
            safe_url(self.frontier.url),
            self.token,
            state,
        )
        if state == "done":
            logger.info(
                "Redis crawl %r is already completed; nothing to crawl", self.frontier.prefix
            )
            self.done = True
            return
        self._poller = LoopingCall(self._tick)
        self._poller.start(self.poll_seconds, now=True)

    def _refused(self, failure: Failure) -> None:
        # One clear line, then the spider is closed once opened (_spider_opened): closing it
        # from here would skip opening Scrapy's scraper and crash the close.
        error = failure.value
        self.done = True
        self.refused = True
        if isinstance(error, CheckpointError):
            logger.error("%s", error)
        else:
            logger.error(
                "Redis frontier %r at %s unavailable: %s",
                self.frontier.prefix,
                safe_url(self.frontier.url),
                error,
            )

    def _spider_opened(self, spider: Spider) -> None:
        if self.refused:
            raise CloseSpider("checkpoint_refused")

    # The engine's interface ---------------------------------------------------------------------

    def has_pending_requests(self) -> bool:
        # Work held by other workers keeps this one alive through spider_idle (_spider_idle).
        return bool(self.buffer or self.replacements)

    def enqueue_request(self, request: Request) -> bool:
        if self.done:
            return False
        meta = request.meta
        lease = self.leases.get(meta.get(LEASE_META, ""))
        if (
            lease is not None
            and lease.request is not None
            and is_replacement_of(request, lease.request)
        ):
            # A retry or redirect: it stays with this worker's lease, whatever the filter.
            lease.replacements += 1
            self.replacements.append(request)
            self.stats.inc_value("redis/replacements")
            return True
        parent = self.leases.get(meta.pop(PARENT_META, None) or "")
        meta.pop(LEASE_META, None)  # copied from a parent's meta (meta=response.meta)
        return self._accept(request, parent)

    def _accept(self, request: Request, parent: _Lease | None) -> bool:
        fingerprint = ""
        if not request.dont_filter:
            found = self.df.first_sight(request)
            if found is None:
                assert self.spider is not None
                self.df.log(request, self.spider)
                return False
            fingerprint = found
        new = NewRequest(fingerprint, self._encode(request), request.priority)
        self.engine_idle = False
        if parent is not None:
            parent.children.append(new)
        else:
            self.pushes.append(new)
            self._kick()
        self.stats.inc_value("scheduler/enqueued/redis")
        self.stats.inc_value("scheduler/enqueued")
        return True

    def next_request(self) -> Request | None:
        self._reconcile()
        request: Request | None = None
        if self.replacements:
            request = self.replacements.popleft()
            lease = self.leases.get(request.meta.get(LEASE_META, ""))
            if lease is not None:
                lease.replacements -= 1
                lease.request = request
        while request is None and self.buffer:
            request_id, candidate = self.buffer.popleft()
            lease = self.leases.get(request_id)
            if lease is None:
                continue  # released meanwhile (lease lost)
            lease.request = candidate
            request = candidate
        if len(self.buffer) * 2 < self.prefetch:
            self._kick()
        if request is not None:
            self.engine_idle = False
            self.stats.inc_value("scheduler/dequeued/redis")
            self.stats.inc_value("scheduler/dequeued")
        return request

    def close(self, reason: str) -> Deferred[None] | None:
        pump = self._pump
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self.closing = True
        if pump is None:
            return None
        if self.refused:
            return pump.stop()
        self._reconcile()
        pushes, acks = self._take_batch()
        self.buffer.clear()

        def leave() -> None:
            if pushes or acks:
                self.frontier.commit(self.token, pushes, acks)
            # Everything still held (unstarted, or cut short by a stop) is queued again at once,
            # for another worker or the next run: nobody waits for the lease to expire.
            released = self.frontier.leave(self.token)
            if released:
                logger.info("Handed %d requests back to the Redis frontier", released)

        deferred = pump.submit(leave)
        deferred.addErrback(
            lambda f: logger.error("Leaving the Redis frontier failed: %s", f.value)
        )
        deferred.addBoth(lambda _: pump.stop())
        return deferred

    # Records and lineage -----------------------------------------------------------------------

    def _item_scraped(self, item: Any, response: Response | Failure | None, spider: Spider) -> None:
        record = item_record(item)
        key = record.get(self.crawler.settings.get("CHECKPOINT_ITEM_KEY") or "url")
        if key is None:  # passed on to feeds and stats, not recorded (as CheckpointPipeline does)
            self.stats.inc_value("redis/items_keyless")
            return
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        source = (
            response.request
            if isinstance(response, Response)
            else getattr(response, "request", None)
        )
        lease = self.leases.get(source.meta.get(LEASE_META, "")) if source is not None else None
        if lease is None:
            logger.warning("Item %s comes from no leased request; it is not recorded", key)
            self.stats.inc_value("redis/items_unrecorded")
            return
        lease.records.append((str(key), line))

    def _spider_idle(self, spider: Spider) -> None:
        """Nothing to do here: stay open until the whole crawl is over (or this run refused)."""
        if self.done:
            return
        self.engine_idle = True
        self._reconcile()
        self._kick(poll=True)
        raise DontCloseSpider

    def _spider_closed(self, spider: Spider, reason: str) -> None:
        if self.exported_here:
            logger.info("Redis crawl %r: records exported by this worker", self.frontier.prefix)

    # Talking to Redis (one job at a time, on the pump thread) ----------------------------------

    def _reconcile(self) -> None:
        """Acknowledge every leased request the engine has completely finished with."""
        engine = self.crawler.engine
        slot = getattr(engine, "_slot", None)
        inprogress: set[Request] | None = getattr(slot, "inprogress", None)
        if inprogress is None or not self.leases:
            return
        finished = [
            lease
            for lease in self.leases.values()
            if lease.request is not None
            and lease.replacements == 0
            and lease.request not in inprogress
        ]
        for lease in finished:
            del self.leases[lease.request_id]
            self.acks.append(Ack(lease.request_id, lease.records, lease.children))
        if finished:
            self._kick()

    def _tick(self) -> None:
        self._reconcile()
        self._kick(poll=True)

    def _take_batch(self) -> tuple[list[NewRequest], list[Ack]]:
        pushes, acks = self.pushes, self.acks
        self.pushes, self.acks = [], []
        return pushes, acks

    def _kick(self, poll: bool = False) -> None:
        """Start the next Redis job if none is running and there is something to do."""
        if self._job_running or self._pump is None or self.done or self.closing:
            return
        want = self.prefetch - len(self.buffer) if len(self.buffer) * 2 < self.prefetch else 0
        if not (self.pushes or self.acks or want or poll):
            return
        pushes, acks = self._take_batch()
        local_work = not self.engine_idle or bool(self.leases or self.buffer or self.replacements)
        self._job_running = True
        deferred = self._pump.submit(self._sync, pushes, acks, want, local_work)
        deferred.addCallbacks(self._synced, self._sync_failed, errbackArgs=(pushes, acks))

    def _sync(
        self, pushes: list[NewRequest], acks: list[Ack], want: int, local_work: bool
    ) -> tuple[CommitResult | None, LeaseResult, list[tuple[str, Request]], str | None]:
        """Pump thread: commit, lease more, and when all work is over, export."""
        committed = self.frontier.commit(self.token, pushes, acks) if pushes or acks else None
        view = self.frontier.lease(self.token, want)
        requests, unreadable = [], []
        for request_id, body in view.requests:
            try:
                requests.append((request_id, _decode(body, self.spider)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # It can never be crawled (a callback renamed since it was queued?): say so
                # and drop it, rather than hold it forever and never finish the crawl.
                logger.error("Redis request %s cannot be read back (%s); dropped", request_id, exc)
                unreadable.append(Ack(request_id))
        if unreadable:
            self.frontier.commit(self.token, acks=unreadable)
        ending = None
        if view.finished and not requests and not local_work:
            ending = self.frontier.claim_export(self.token)
            if ending == "export":
                ending = self._export()
        return committed, view, requests, ending

    def _export(self) -> str:
        output = self._output_file()
        if not output:
            logger.warning("No CHECKPOINT_OUTPUT_FILE: the records stay in Redis only")
            where = "(redis)"
        else:
            count, failed = export_records(self.frontier, output)
            where = f"{socket.gethostname()}:{os.path.abspath(output)}"
            logger.info("Exported %d records (%d failed) to %s", count, failed, output)
        if not self.frontier.finish_export(self.token, where):
            return "exporting"  # lost the export lease meanwhile: the new holder writes it again
        self.exported_here = True
        return "done"

    def _synced(
        self,
        result: tuple[CommitResult | None, LeaseResult, list[tuple[str, Request]], str | None],
    ) -> None:
        self._job_running = False
        self._failures = 0
        if self.closing:
            return  # what it leased is handed back by close()
        committed, view, requests, ending = result
        self.view = view
        self._log_progress(view)
        if committed is not None:
            self.stats.inc_value("redis/pushed", committed.pushed)
            self.stats.inc_value("redis/acked", committed.acked)
            if committed.duplicates:
                self.stats.inc_value("redis/records_duplicate", committed.duplicates)
            if committed.refused:
                # Our lease on those requests expired and was given to another worker: their
                # records are that worker's to write. Children we filtered locally may never
                # have reached Redis, so the local filter is dropped.
                logger.warning(
                    "%d finished requests were no longer leased to this worker; not recorded",
                    committed.refused,
                )
                self.stats.inc_value("redis/acks_refused", committed.refused)
                self.df.forget()
        if view.lost or self._lost:
            self._lost = False
            logger.warning(
                "This worker's Redis lease expired (stalled longer than %.1f s); its requests "
                "went back to the queue",
                self.frontier.lease_ms / 1000,
            )
            self.stats.inc_value("redis/lease_lost")
            self.df.forget()
        for request_id, request in requests:
            if request_id in self.leases:
                continue  # still being processed here from before a lost lease
            request.meta[LEASE_META] = request_id
            self.leases[request_id] = _Lease(request_id)
            self.buffer.append((request_id, request))
        if ending == "done":
            self.done = True
        if requests or self.done:
            self._wake_engine()
        if self.pushes or self.acks or (len(self.buffer) * 2 < self.prefetch and requests):
            self._kick()

    def _log_progress(self, view: LeaseResult) -> None:
        """Every ``LOGSTATS_INTERVAL`` seconds, the whole crawl's progress (all workers)."""
        now = time.monotonic()
        last_time, last_done = self._progress_mark
        if now - last_time < self.log_interval:
            return
        self._progress_mark = (now, view.done)
        if last_time == 0.0:
            return  # the first reading only starts the clock
        rate = throughput(view.done - last_done, now - last_time)
        logger.info(
            "Redis crawl %r: Progress: %.1f%% (%d/%d requests) | queued %d, in flight %d | "
            "%d records | %d workers | Throughput: %.1f requests/sec | ETA: %s",
            self.frontier.prefix,
            percent_complete(view.done, view.scheduled),
            view.done,
            view.scheduled,
            view.queued,
            view.in_flight,
            view.records,
            view.workers,
            rate,
            format_duration(eta_seconds(view.done, view.scheduled, rate)),
        )

    def _sync_failed(self, failure: Failure, pushes: list[NewRequest], acks: list[Ack]) -> None:
        self._job_running = False
        # Nothing was lost: put the batch back in front, the poller tries again.
        self.pushes[:0] = pushes
        self.acks[:0] = acks
        self._failures += 1
        if self._failures == 1 or self._failures % 50 == 0:
            logger.error(
                "Redis frontier %r at %s: %s (retrying)",
                self.frontier.prefix,
                safe_url(self.frontier.url),
                failure.getErrorMessage(),
            )

    def _wake_engine(self) -> None:
        slot = getattr(self.crawler.engine, "_slot", None)
        nextcall = getattr(slot, "nextcall", None)
        if nextcall is not None:
            nextcall.schedule()

    def _encode(self, request: Request) -> str:
        spider = self.spider
        assert spider is not None
        encoder = self._encoder
        if encoder is None or encoder.spider is not spider:
            encoder = self._encoder = RequestEncoder(spider)
        data = compact_request_dict(encoder.to_dict(request))
        return json.dumps(to_json_safe(data), ensure_ascii=False, separators=(",", ":"))


def _decode(body: str, spider: Spider | None) -> Request:
    return request_from_dict(from_json_safe(json.loads(body)), spider=spider)


def _default_prefix(crawler: Crawler) -> str:
    spider_cls = crawler.spidercls
    stage = crawler.settings.get("CHECKPOINT_STAGE_NAME") or getattr(
        spider_cls, "checkpoint_stage", None
    )
    return str(stage or spider_cls.name)
