"""One checkpoint per Scrapy crawl, shared by the middleware, the scheduler and the pipeline.

How a crawl survives SIGKILL:

* Every request the scheduler accepts is appended to the stage's *request journal* with a
  sequence number (``request.to_dict()`` as JSON: no pickle). The journal is committed in the
  same atomic checkpoint save as everything else, so it is the crash-safe frontier and, through
  the fingerprints it holds, the crash-safe dupefilter.
* A request is *done* once Scrapy has finished with it completely: downloaded (or failed),
  its callback or errback exhausted and every item it produced through the item pipelines. That
  is exactly when the engine drops it from its in-progress set, so the runtime marks requests
  done by noticing that (:meth:`CrawlCheckpoint.reconcile`), before each save and each time the
  engine asks the scheduler for more work.
* Records are written through the checkpoint's output journal keyed by URL: a record is
  committed together with its key, and a redone request cannot write its URL twice.

On resume the journal is read back: every fingerprint goes into the dupefilter and every
request not yet done is scheduled again. Records written after the last save are cut off the
output and rewritten once. Work redone after a crash is what finished since the last save plus
what was in flight.

Settings (all optional except ``CHECKPOINT_ENABLED``):

* ``CHECKPOINT_ENABLED``: switch the integration on.
* ``CHECKPOINT_DIR``: checkpoint directory (``data/checkpoints``).
* ``CHECKPOINT_STORE``: ``json`` or ``sqlite`` (:func:`common.stores.open_store`); unset, the
  store ``CHECKPOINT_DIR`` holds (``sqlite`` when it holds ``checkpoints.sqlite3``, else
  ``json``), and one that differs from it refuses the start
  (:func:`common.stores.factory.select_store`; with ``CHECKPOINT_FRESH`` a directory holding
  only this stage switches, once the start goes ahead: a refused one removes nothing). With
  ``sqlite`` the done URLs live in a table, not in memory, and each output record gets a
  ledger row (``CHECKPOINT_WORKER_ID`` names the worker; default ``<host>-<pid>``;
  ``CHECKPOINT_LEDGER = False`` keeps no ledger rows).
* ``CHECKPOINT_STAGE_NAME``: the stage (the spider's ``checkpoint_stage`` or name by default).
* ``CHECKPOINT_AUTO_SAVE_INTERVAL``: save after this many updates (100; an update is an item
  written or a request skipped).
* ``CHECKPOINT_SAVE_EVERY_SECONDS``: and at least this often (2.0).
* ``CHECKPOINT_MIN_SAVE_INTERVAL``: but at most this often (0.25 s): a crawl makes thousands of
  updates a second, and each save costs the reactor a snapshot.

  Saves follow the work, not the clock: a save costs the same few milliseconds of CPU (its
  fsyncs and renames) however little it carries, so a crawl that saved every 0.25 s whenever
  anything had changed paid for saves in proportion to its wall time, and most on a slow or
  loaded machine. What a kill leaves a resume to redo stays bounded: what finished since the
  last save (100 updates' worth or 0.25 s' worth, whichever is more, never more than 2 s'
  worth) plus what was in flight.
* ``CHECKPOINT_OUTPUT_FILE``: the stage's JSON Lines output (or the spider's
  ``checkpoint_output_file`` attribute).
* ``CHECKPOINT_INPUT_FILE``: the stage's input, hashed to guard a resume (or the spider's
  ``checkpoint_input_file``).
* ``CHECKPOINT_CONFIG``: a dict hashed to guard a resume (or the spider's ``checkpoint_config``);
  with the spider and the settings that change what is crawled it makes the crawl's identity
  (:mod:`common.scrapy.identity`, ``CHECKPOINT_IDENTITY_IGNORE`` names settings left out of it).
* ``CHECKPOINT_ITEM_KEY``: the item field records are keyed by (``url``); items without it pass
  through unwritten (``checkpoint/items_keyless``, one WARNING at the first).
* ``CHECKPOINT_REDIS_URL``: handled by the Redis add-on (:mod:`common.scrapy.redis_addon`),
  which takes these components out; set with them still in, the start is refused.
* ``FEEDS`` (Scrapy's): one WARNING says they hold this run's items only
  (:mod:`common.scrapy.feeds`); a start that crawls nothing leaves them as they were.
* ``CHECKPOINT_FORCE``: resume even over a changed input or configuration.
* ``CHECKPOINT_FRESH``: forget earlier progress and crawl from scratch.
* ``CHECKPOINT_REFUSED_EXIT_CODE``: what ``scrapy crawl`` (with ``COMMANDS_MODULE =
  "common.scrapy.commands"``) exits with after a refused start (1); a failed stage exits 1.

Any other ``CHECKPOINT_*`` setting (:mod:`common.scrapy.known_settings` lists those read) refuses the start: a
misspelt name would be ignored by Scrapy, silently.

Close reasons: ``finished`` completes the stage; a reason ending in ``_error`` (Scrapy's
``start_error``, a spider's ``CloseSpider("input_error")``) fails it; every other reason
(``shutdown``, ``cancelled``, ``closespider_*``, any other ``CloseSpider`` reason) pauses it, so
the next run resumes. A ``finished`` crawl that received no response at all while downloads
failed fails with the first failed URL and its error (``fetched nothing``); it starts afresh next
time. A refused start closes the spider as ``checkpoint_refused``; a completed stage run again
with the same identity closes at once as ``checkpoint_already_completed``.

Why one module of ~600 lines (a tenth of it the settings above): :class:`CrawlCheckpoint` is
the one object the middleware, the scheduler and the pipeline of a crawl share, and its parts
meet in the same fields on the reactor thread: the requests handed out, read when reconciling,
before each save and when the close reason settles the status; the journal's sequence, read
when resuming and in each save's frontier figures. Split apart, those fields would be shared
across modules. What has a job of its own is apart: the request encoding
(:mod:`common.scrapy.requests`), the crawl's identity (:mod:`common.scrapy.identity`), the
engine (:mod:`common.checkpoint`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from common.checkpoint import EnhancedCheckpoint
from common.errors import CheckpointError, StoreMismatchError
from common.journal import Journal
from common.lifecycle import RESUME_ADVICE
from common.scrapy.feeds import leave_feeds_alone, warn_feeds_are_per_run
from common.scrapy.identity import crawl_identity
from common.scrapy.known_settings import misspelt_settings, warn_unread
from common.scrapy.requests import (
    RequestEncoder,
    compact_request_dict,
    from_json_safe,
    is_replacement_of,
    to_json_safe,
)
from common.status import CheckpointStatus
from common.stores.factory import select_store

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

__all__ = [
    "ALREADY_COMPLETED",
    "REFUSED",
    "CrawlCheckpoint",
    "RequestEncoder",
    "ResumeFrontier",
    "compact_request_dict",
    "crawl_exit_code",
    "from_json_safe",
    "is_replacement_of",
    "to_json_safe",
]

logger = logging.getLogger("common.scrapy")

REQUESTS_JOURNAL = "requests"
SEQ_META = "checkpoint_seq"
OUTCOME_META = "checkpoint_outcome"
REFUSED = "checkpoint_refused"
ALREADY_COMPLETED = "checkpoint_already_completed"
FETCHED_NOTHING = "fetched_nothing"
#: Where a crawl that is to be shared through Redis must be switched on (docs/redis.md).
REDIS_ADDON = "common.scrapy.redis_addon.RedisFrontierAddon"
#: The engine's advice after a refused resume, in the settings a Scrapy run passes.
SCRAPY_RESUME_ADVICE = (
    "Set CHECKPOINT_FRESH=True to start the stage over, or CHECKPOINT_FORCE=True to resume it "
    "anyway"
)

#: The crawler attribute that holds its runtime, so that the runtime (and the receivers it
#: connects to the crawler's signals) lives exactly as long as the crawler. A module-level
#: WeakKeyDictionary did not: its values refer to their crawlers, so no entry ever let go of
#: its key, every crawler of the process stayed to interpreter exit, and its receivers were
#: torn down with pydispatch half gone ("Exception during saferef BoundMethodWeakref(...)").
_RUNTIME_ATTRIBUTE = "_checkpoint_runtime"


@dataclass
class ResumeFrontier:
    """What a resumed crawl reads back from its request journal."""

    fingerprints: list[str] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    scheduled: int = 0


class CrawlCheckpoint:
    """The checkpoint of one crawl; get it with :meth:`for_crawler`."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.enabled = settings.getbool("CHECKPOINT_ENABLED")
        self.directory = Path(settings.get("CHECKPOINT_DIR") or "data/checkpoints")
        self.auto_save_interval = settings.getint("CHECKPOINT_AUTO_SAVE_INTERVAL", 100)
        self.save_every_seconds = settings.getfloat("CHECKPOINT_SAVE_EVERY_SECONDS", 2.0)
        self.min_save_interval = settings.getfloat("CHECKPOINT_MIN_SAVE_INTERVAL", 0.25)
        self.force = settings.getbool("CHECKPOINT_FORCE")
        self.fresh = settings.getbool("CHECKPOINT_FRESH")
        self.store_name: str | None = settings.get("CHECKPOINT_STORE") or None
        self.worker_id: str | None = settings.get("CHECKPOINT_WORKER_ID") or None
        self.ledger = settings.getbool("CHECKPOINT_LEDGER", True)
        self.checkpoint: EnhancedCheckpoint | None = None
        self.has_work = True
        self.frontier_enabled = False
        self.requests: Journal | None = None
        self._next_seq = 0
        self._request_encoder: RequestEncoder | None = None
        self._handed_out: dict[int, Request] = {}
        self._reconciling = False
        self.item_key = str(settings.get("CHECKPOINT_ITEM_KEY") or "url")
        self.refused: str | None = None
        self.closed = False
        self.responses = 0
        self.first_error: tuple[str, str] | None = None
        self.output_attached = False
        self.output_file: str | None = None

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> CrawlCheckpoint:
        """The crawl's runtime, created (and wired to the crawl's signals) on first use."""
        runtime: CrawlCheckpoint | None = getattr(crawler, _RUNTIME_ATTRIBUTE, None)
        if runtime is None:
            runtime = cls(crawler)
            setattr(crawler, _RUNTIME_ATTRIBUTE, runtime)
            if runtime.enabled:
                crawler.signals.connect(runtime.spider_opened, signal=signals.spider_opened)
                crawler.signals.connect(runtime.spider_closed, signal=signals.spider_closed)
        return runtime

    # Opening -----------------------------------------------------------------------------------

    def stage_name(self, spider: Spider) -> str:
        name = self.crawler.settings.get("CHECKPOINT_STAGE_NAME")
        return str(name or getattr(spider, "checkpoint_stage", None) or spider.name)

    def open(self, spider: Spider) -> ResumeFrontier:
        """Blocking (run it in a thread): load, lock, start or resume, load the done keys, read
        the journal."""
        if self.checkpoint is not None:
            return ResumeFrontier()
        settings = self.crawler.settings
        stage = self.stage_name(spider)
        output = settings.get("CHECKPOINT_OUTPUT_FILE") or getattr(
            spider, "checkpoint_output_file", None
        )
        input_file = settings.get("CHECKPOINT_INPUT_FILE") or getattr(
            spider, "checkpoint_input_file", None
        )
        config: Mapping[str, Any] = crawl_identity(spider, settings)
        warn_unread(settings, logger)
        problem = misspelt_settings(settings)
        if problem is not None:
            raise CheckpointError(
                f"stage {stage!r}: {problem}; no component reads it (the README's settings "
                f"table lists those that exist) (nothing was changed)",
                stage=stage,
            )
        if settings.get("CHECKPOINT_REDIS_URL"):
            # The add-on takes these components out when it switches the crawl to Redis: here,
            # it did not. A user who names a Redis server expects a shared crawl, not this one.
            raise CheckpointError(
                f"stage {stage!r}: CHECKPOINT_REDIS_URL is set, but the crawl is not on the Redis "
                f"frontier: add ADDONS = {{{REDIS_ADDON!r}: 0}} to the project's settings "
                "(docs/redis.md), or unset CHECKPOINT_REDIS_URL to crawl on this machine alone "
                "(nothing was changed)",
                stage=stage,
            )
        try:
            # Unset: the store the directory holds; another one is refused as everywhere else.
            choice = select_store(
                self.store_name,
                self.directory,
                fresh=self.fresh,
                restarting=[stage],
                start_over="set CHECKPOINT_FRESH=True",
                start_over_all="give this stage a CHECKPOINT_DIR of its own",
                option="CHECKPOINT_STORE",
                outputs=[output] if output else (),
            )
            checkpoint = EnhancedCheckpoint(
                self.directory / f"{stage}.json",
                auto_save_interval=self.auto_save_interval,
                save_every_seconds=self.save_every_seconds,
                min_save_interval=self.min_save_interval,
                store=choice.kind,
                worker_id=self.worker_id,
                ledger=self.ledger,
                store_switch=choice.switch,  # made by start(), once it goes ahead
            )
        except StoreMismatchError:
            raise  # its own line: what the directory holds, and the way out
        except ValueError as exc:  # a bad CHECKPOINT_* setting: refuse the start, one line
            raise CheckpointError(f"stage {stage!r}: {exc}", stage=stage) from None
        try:
            checkpoint.acquire(cut=False)  # start() cuts, once its guards have passed
            if output:
                checkpoint.attach_output(output)
            requests = None
            if self.frontier_enabled:
                requests = checkpoint.attach_journal(
                    REQUESTS_JOURNAL, checkpoint.store.journal_path(stage, REQUESTS_JOURNAL)
                )
            # A crawl that fetched nothing keeps nothing worth resuming (its requests are all
            # "done"): its next run starts afresh.
            fetched_nothing = checkpoint.status is CheckpointStatus.FAILED and bool(
                checkpoint.state.metadata.get(FETCHED_NOTHING)
            )
            self.has_work = checkpoint.start(
                stage,
                None,
                input_file,
                config=config,
                output_file=output,
                force=self.force,
                fresh=self.fresh or fetched_nothing,
                # A stage starting over reads its whole input before anything is truncated.
                input_validator=getattr(spider, "checkpoint_input_validator", None),
            )
            checkpoint.state.metadata.setdefault("spider_name", spider.name)
            # Here, in this worker thread, not by the first item's update() on the reactor
            # thread while requests are in flight: the done keys loaded (the keys journal cut
            # back, fsynced and read, or the SQLite key count), and the start's save on disk
            # (it creates a new SQLite database, which spider_opened's reader then opens).
            checkpoint.flush()
            logger.debug("Stage %s: %d done keys", stage, checkpoint.done_keys_count)
            frontier = ResumeFrontier()
            if requests is not None:
                frontier = self._read_frontier(checkpoint, requests)
                checkpoint.add_snapshot_hook(self._before_save)
                # The hook reads the reactor's state: the engine's timer saves through it.
                checkpoint.set_owner_waker(self._wake_from_saver)
        except BaseException:
            checkpoint.close()
            raise
        self.checkpoint = checkpoint
        self.requests = requests
        self.output_attached = bool(output)
        self.output_file = str(output) if output else None
        return frontier

    def _read_frontier(self, checkpoint: EnhancedCheckpoint, journal: Journal) -> ResumeFrontier:
        frontier = ResumeFrontier()
        window = checkpoint.state.completion
        for entry in journal.read_committed():
            seq = entry["seq"]
            if entry.get("fp"):
                frontier.fingerprints.append(entry["fp"])
            if not window.is_done(seq):
                frontier.pending.append(from_json_safe(entry["request"]))
            frontier.scheduled += 1
        self._next_seq = frontier.scheduled
        if frontier.scheduled:
            logger.info(
                "Resuming crawl %s: %d items written before; %d of %d requests done, %d to "
                "crawl again",
                checkpoint.stage,
                checkpoint.state.progress.processed_items,
                frontier.scheduled - len(frontier.pending),
                frontier.scheduled,
                len(frontier.pending),
            )
        return frontier

    def _wake_from_saver(self) -> None:
        """Any thread: run :meth:`_tick` on the reactor thread soon. The engine's timer calls
        it when a save it deferred falls due, or when unsaved work is ``save_every_seconds``
        old; the crawl keeps no timer of its own (saves follow the work: see above)."""
        from twisted.internet import reactor

        reactor.callFromThread(self._tick)  # type: ignore[attr-defined]

    def _tick(self) -> None:
        checkpoint = self.checkpoint
        if checkpoint is None or self.closed:
            return
        self.reconcile()
        checkpoint.tick()

    # Requests ------------------------------------------------------------------------------------

    def record_request(self, request: Request, fingerprint: str | None, spider: Spider) -> bool:
        """Journal an accepted request; False if it cannot be serialised (kept in memory).

        ``fingerprint`` is None for a retry or redirect: it goes back into the dupefilter on
        resume only for requests that passed it.
        """
        journal = self.requests
        if journal is None:
            return False
        seq = self._next_seq
        request.meta[SEQ_META] = seq
        try:
            journal.append(
                {
                    "seq": seq,
                    "fp": fingerprint,
                    "request": to_json_safe(
                        compact_request_dict(self._encoder(spider).to_dict(request))
                    ),
                }
            )
        except (ValueError, TypeError) as exc:
            del request.meta[SEQ_META]
            logger.warning(
                "Request %s cannot be checkpointed (%s); it will be lost if the crawl is killed",
                request,
                exc,
            )
            self.crawler.stats.inc_value("checkpoint/requests_unserializable")  # type: ignore[union-attr]
            return False
        self._next_seq = seq + 1
        self.crawler.stats.inc_value("checkpoint/requests_journaled")  # type: ignore[union-attr]
        return True

    def _encoder(self, spider: Spider) -> RequestEncoder:
        encoder = self._request_encoder
        if encoder is None or encoder.spider is not spider:
            encoder = self._request_encoder = RequestEncoder(spider)
        return encoder

    def handed_out(self, request: Request) -> None:
        """The engine took ``request`` from the scheduler."""
        seq = request.meta.get(SEQ_META)
        if seq is not None:
            self._handed_out[seq] = request

    def is_replacement(self, request: Request) -> bool:
        """True when ``request`` is a retry or redirect of a journaled request in flight.

        Such a request replaces its original (which is done only once it is), so it must be
        crawled whatever the dupefilter says. A child that merely copied its parent's meta
        (``meta=response.meta``) is not one: it has a new URL and no new retry or redirect.
        """
        seq = request.meta.get(SEQ_META)
        original = self._handed_out.get(seq) if seq is not None else None
        return original is not None and is_replacement_of(request, original)

    def reconcile(self) -> int:
        """Mark done every handed-out request the engine has completely finished with."""
        if not self._handed_out or self.checkpoint is None or self._reconciling:
            return 0
        engine = self.crawler.engine
        slot = getattr(engine, "_slot", None)
        inprogress: set[Request] | None = getattr(slot, "inprogress", None)
        if inprogress is None:
            return 0
        finished = [
            (seq, request) for seq, request in self._handed_out.items() if request not in inprogress
        ]
        for seq, _request in finished:
            del self._handed_out[seq]
        checkpoint = self.checkpoint
        stats = self.crawler.stats
        # update() may auto-save, and a save calls reconcile() again (its snapshot hook).
        self._reconciling = True
        try:
            for seq, request in finished:
                checkpoint.mark_done(seq)
                if request.meta.get(OUTCOME_META) == "skipped":
                    checkpoint.update(processed=0, skipped=1)
                if stats is not None:
                    stats.inc_value("checkpoint/requests_done")
        finally:
            self._reconciling = False
        return len(finished)

    def _before_save(self) -> None:
        self.reconcile()
        checkpoint = self.checkpoint
        if checkpoint is None:
            return
        window = checkpoint.state.completion
        checkpoint.state.metadata["frontier"] = {
            "scheduled": self._next_seq,
            "done": window.done_count,
            "in_flight": len(self._handed_out),
        }
        if checkpoint.state.status is CheckpointStatus.RUNNING:
            spider = self.crawler.spider
            known_total = getattr(spider, "checkpoint_total_items", None)
            checkpoint.state.progress.total_items = max(
                checkpoint.state.progress.processed_items,
                known_total if isinstance(known_total, int) else self._next_seq,
            )

    # Items -------------------------------------------------------------------------------------

    def write_record(
        self, record: Mapping[str, Any], key: str, *, ok: bool, failed: bool = False
    ) -> bool:
        """Commit one output record under ``key``; False if that key was written already."""
        checkpoint = self.checkpoint
        if checkpoint is None:
            raise RuntimeError("the crawl checkpoint is not open")
        return checkpoint.update(
            processed=1,
            successful=1 if ok else 0,
            failed=0 if ok else 1,
            last_item=key,
            key=key,
            record=dict(record),
            failed_record=dict(record) if failed else None,
        )

    # Downloads -----------------------------------------------------------------------------------

    def note_response(self) -> None:
        self.responses += 1

    def note_download_error(self, request: Request, error: BaseException) -> None:
        """Remember the first failed download (a page's before robots.txt's) for the report of
        a crawl that fetched nothing."""
        if self.first_error is None or (
            self.first_error[0].endswith("/robots.txt")
            and not request.meta.get("dont_obey_robotstxt")
        ):
            self.first_error = (request.url, f"{type(error).__name__}: {error}")

    # Signals -------------------------------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        """Open the checkpoint (if the scheduler did not), or close a crawl with nothing to do."""
        if self.refused is None and self.checkpoint is None:
            try:
                await maybe_deferred_to_future(deferToThread(self.open, spider))
            except CheckpointError as exc:
                self.refuse(exc)
            else:
                if not self.frontier_enabled:
                    logger.warning(
                        "Checkpointing without CheckpointScheduler: progress is tracked, but the "
                        "frontier is not crash-safe (set SCHEDULER = "
                        "'common.scrapy.scheduler.CheckpointScheduler')"
                    )
        if self.refused is not None:
            leave_feeds_alone(self.crawler)  # a refused start writes nothing
            raise CloseSpider(REFUSED)
        checkpoint = self.checkpoint
        assert checkpoint is not None
        stats = self.crawler.stats
        if checkpoint.recovered_from_crash and stats is not None:
            stats.set_value("checkpoint/recovered_from_crash", True)
        if not self.has_work:
            logger.info(
                "Stage %s already completed with this spider, arguments and settings; nothing "
                "to crawl (CHECKPOINT_FRESH=True crawls it again)",
                checkpoint.stage,
            )
            # With -O, Scrapy would store this run's empty feed over the completed crawl's.
            feeds = leave_feeds_alone(self.crawler)
            if feeds:
                logger.warning(
                    "Feeds left as they were: %s (this run exports nothing%s)",
                    ", ".join(feeds),
                    f"; CHECKPOINT_OUTPUT_FILE {self.output_file} holds every item of the crawl"
                    if self.output_file
                    else "",
                )
            raise CloseSpider(ALREADY_COMPLETED)
        warn_feeds_are_per_run(
            self.crawler, self.output_file, checkpoint.state.progress.processed_items
        )
        # The reactor thread's own reader of the done keys (with SQLite a connection of its
        # own, opened with a retry while another connection sets the database up) is opened
        # now, before the crawl fetches, not by the first item while requests are in flight.
        checkpoint.is_key_done("")

    def refuse(self, error: CheckpointError) -> None:
        """Log a refused start as one error line, in a Scrapy run's settings; the spider is
        then closed as ``checkpoint_refused`` once opened."""
        line = str(error).replace(RESUME_ADVICE, SCRAPY_RESUME_ADVICE)
        logger.error("%s", line)
        self.refused = line
        self.has_work = False

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        self.settle(reason)
        await maybe_deferred_to_future(deferToThread(self.close))
        checkpoint = self.checkpoint
        stats = self.crawler.stats
        if checkpoint is not None:
            if stats is not None:
                stats.set_value("checkpoint/status", checkpoint.status.value)
            logger.info(
                "Checkpoint %s %s: %s",
                checkpoint.stage,
                checkpoint.status.value,
                checkpoint.progress_line(),
            )

    # Closing -----------------------------------------------------------------------------------

    def settle(self, reason: str) -> None:
        """On the reactor thread: fold in the last completions and set the final status.

        ``finished`` completes the stage (or fails it if nothing at all could be fetched); a
        reason ending in ``_error`` fails it with the reason recorded; any other reason
        (``shutdown``, ``cancelled``, ``closespider_*``, a spider's ``CloseSpider``) pauses it,
        so the next run resumes. The saves are submitted, not awaited.
        """
        checkpoint = self.checkpoint
        if checkpoint is None or self.closed:
            return
        self.reconcile()
        status = checkpoint.status
        if status not in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING):
            return
        progress = checkpoint.state.progress
        if reason == "finished" and not self._handed_out:
            if (
                self.responses == 0
                and self.first_error is not None
                and not (progress.successful_items)
            ):
                url, error = self.first_error
                checkpoint.state.metadata[FETCHED_NOTHING] = True
                # The failed start request was counted: its final line says 1/1, not 1/0.
                progress.total_items = max(progress.total_items, progress.processed_items)
                checkpoint.fail(f"fetched nothing: {url}: {error}", wait=False)
                return
            progress.total_items = progress.processed_items
            checkpoint.complete(wait=False)
        elif reason.endswith("_error"):
            detail = getattr(self.crawler.spider, "checkpoint_error", None)
            checkpoint.fail(
                f"spider closed: {reason}" + (f": {detail}" if detail else ""), wait=False
            )
        else:
            checkpoint.pause(wait=False)

    def close(self) -> None:
        """Blocking (run it in a thread): wait for the last save and release the stage lock."""
        checkpoint = self.checkpoint
        if checkpoint is None or self.closed:
            return
        self.closed = True
        checkpoint.close()


def crawl_exit_code(crawler: Crawler) -> int:
    """What ``scrapy crawl`` should exit with after ``crawler`` closed: 0 unless its start was
    refused (``CHECKPOINT_REFUSED_EXIT_CODE``, 1) or its stage failed (1)."""
    stats = crawler.stats
    if stats is None:
        return 0
    if stats.get_value("finish_reason") == REFUSED:
        return crawler.settings.getint("CHECKPOINT_REFUSED_EXIT_CODE", 1)
    if stats.get_value("checkpoint/status") == CheckpointStatus.FAILED.value:
        return 1
    return 0
