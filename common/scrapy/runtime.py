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
* ``CHECKPOINT_STORE``: ``json`` (default) or ``sqlite`` (:func:`common.stores.open_store`);
  with ``sqlite`` the done URLs live in a table, not in memory, and each output record gets a
  ledger row (``CHECKPOINT_WORKER_ID`` names the worker; default ``<host>-<pid>``;
  ``CHECKPOINT_LEDGER = False`` keeps no ledger rows).
* ``CHECKPOINT_STAGE_NAME``: the stage (the spider's ``checkpoint_stage`` or name by default).
* ``CHECKPOINT_AUTO_SAVE_INTERVAL``: save after this many updates (10).
* ``CHECKPOINT_SAVE_EVERY_SECONDS``: and at least this often (2.0).
* ``CHECKPOINT_MIN_SAVE_INTERVAL``: but at most this often (0.25 s): a crawl makes thousands of
  updates a second, and each save costs the reactor a snapshot.
* ``CHECKPOINT_OUTPUT_FILE``: the stage's JSON Lines output (or the spider's
  ``checkpoint_output_file`` attribute).
* ``CHECKPOINT_INPUT_FILE``: the stage's input, hashed to guard a resume (or the spider's
  ``checkpoint_input_file``).
* ``CHECKPOINT_CONFIG``: a dict hashed to guard a resume (or the spider's ``checkpoint_config``).
* ``CHECKPOINT_FORCE``: resume even over a changed input or configuration.
* ``CHECKPOINT_FRESH``: forget earlier progress and crawl from scratch.
"""

from __future__ import annotations

import base64
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Request
from twisted.internet.task import LoopingCall

from common.checkpoint import EnhancedCheckpoint
from common.errors import CheckpointError
from common.journal import Journal
from common.status import CheckpointStatus

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

__all__ = ["CrawlCheckpoint", "RequestEncoder", "ResumeFrontier", "is_replacement_of"]

logger = logging.getLogger("common.scrapy")

REQUESTS_JOURNAL = "requests"
SEQ_META = "checkpoint_seq"
OUTCOME_META = "checkpoint_outcome"

_RUNTIMES: weakref.WeakKeyDictionary[Crawler, CrawlCheckpoint] = weakref.WeakKeyDictionary()


_REQUEST_DEFAULTS: dict[str, Any] = {
    "body": b"",
    "cookies": {},
    "headers": {},
    "meta": {},
    "encoding": "utf-8",
    "flags": [],
    "cb_kwargs": {},
    "dont_filter": False,
    "method": "GET",
    "priority": 0,
    "errback": None,
}


class RequestEncoder:
    """``Request.to_dict(spider=spider)`` with the callback names cached.

    Scrapy finds a callback's name with ``inspect.getmembers(spider)`` on every call: about
    60 µs each, twice per request, which made journaling the largest cost the checkpoint adds to
    a crawl. The name of a spider method never changes, so it is looked up once per function.
    Anything unusual (a callback that is not a method of this spider) goes through Scrapy's own
    ``to_dict``, so errors and output stay Scrapy's.
    """

    def __init__(self, spider: Spider) -> None:
        self.spider = spider
        self._names: dict[Any, str] = {}

    def _method_name(self, func: Any) -> str | None:
        if func is None or isinstance(func, str):
            return func  # type: ignore[no-any-return]
        if getattr(func, "__self__", None) is not self.spider:
            raise LookupError
        key = func.__func__
        name = self._names.get(key)
        if name is None:
            candidate = func.__name__
            bound = getattr(self.spider, candidate, None)
            if getattr(bound, "__func__", None) is not key:
                raise LookupError
            name = self._names[key] = candidate
        return name

    def to_dict(self, request: Request) -> dict[str, Any]:
        try:
            data: dict[str, Any] = {
                "url": request.url,
                "callback": self._method_name(request.callback),
                "errback": self._method_name(request.errback),
                "headers": dict(request.headers),
            }
        except LookupError:
            return request.to_dict(spider=self.spider)
        for attr in request.attributes:
            data.setdefault(attr, getattr(request, attr))
        if type(request) is not Request:
            data["_class"] = type(request).__module__ + "." + type(request).__name__
        return data


def compact_request_dict(data: dict[str, Any]) -> dict[str, Any]:
    """``Request.to_dict()`` without the fields at their defaults (``request_from_dict`` fills
    them back in): journal records half the size, and half the encoding work."""
    return {
        k: v for k, v in data.items() if k not in _REQUEST_DEFAULTS or _REQUEST_DEFAULTS[k] != v
    }


def to_json_safe(value: Any) -> Any:
    """``Request.to_dict()`` output made JSON-safe: bytes and bytes-keyed dicts are tagged."""
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            if len(value) == 1 and next(iter(value)) in ("$b", "$d"):
                return {"$d": [[k, to_json_safe(v)] for k, v in value.items()]}
            return {k: to_json_safe(v) for k, v in value.items()}
        return {"$d": [[to_json_safe(k), to_json_safe(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [to_json_safe(v) for v in value]
    return value


def from_json_safe(value: Any) -> Any:
    """The inverse of :func:`to_json_safe`."""
    if isinstance(value, dict):
        if len(value) == 1:
            if "$b" in value:
                return base64.b64decode(value["$b"])
            if "$d" in value:
                return {from_json_safe(k): from_json_safe(v) for k, v in value["$d"]}
        return {k: from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    return value


def is_replacement_of(request: Request, original: Request) -> bool:
    """True when ``request`` is a retry or redirect of ``original`` (which Scrapy handed out).

    Such a request replaces its original, which is finished only once the replacement is. A
    child that merely copied its parent's meta (``meta=response.meta``) is not one: it has a new
    URL and no new retry or redirect.
    """
    if original is request:
        return False
    retries = request.meta.get("retry_times", 0)
    if request.url == original.url and retries > original.meta.get("retry_times", 0):
        return True
    hops = request.meta.get("redirect_urls") or []
    return len(hops) > len(original.meta.get("redirect_urls") or []) and hops[-1] == original.url


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
        self.auto_save_interval = settings.getint("CHECKPOINT_AUTO_SAVE_INTERVAL", 10)
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
        self._ticker: LoopingCall | None = None
        self._reconciling = False
        self.refused: str | None = None
        self.closed = False

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> CrawlCheckpoint:
        runtime = _RUNTIMES.get(crawler)
        if runtime is None:
            runtime = _RUNTIMES[crawler] = cls(crawler)
        return runtime

    # Opening -----------------------------------------------------------------------------------

    def stage_name(self, spider: Spider) -> str:
        name = self.crawler.settings.get("CHECKPOINT_STAGE_NAME")
        return str(name or getattr(spider, "checkpoint_stage", None) or spider.name)

    def open(self, spider: Spider) -> ResumeFrontier:
        """Blocking (run it in a thread): load, lock, start or resume, read the journal."""
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
        config: Mapping[str, Any] | None = settings.getdict("CHECKPOINT_CONFIG") or getattr(
            spider, "checkpoint_config", None
        )
        try:
            checkpoint = EnhancedCheckpoint(
                self.directory / f"{stage}.json",
                auto_save_interval=self.auto_save_interval,
                save_every_seconds=self.save_every_seconds,
                min_save_interval=self.min_save_interval,
                store=self.store_name,
                worker_id=self.worker_id,
                ledger=self.ledger,
            )
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
            self.has_work = checkpoint.start(
                stage,
                None,
                input_file,
                config=config,
                output_file=output,
                force=self.force,
                fresh=self.fresh,
                # A stage starting over reads its whole input before anything is truncated.
                input_validator=getattr(spider, "checkpoint_input_validator", None),
            )
            checkpoint.state.metadata.setdefault("spider_name", spider.name)
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
                "Frontier of %s: %d requests scheduled before, %d to do again",
                checkpoint.stage,
                frontier.scheduled,
                len(frontier.pending),
            )
        return frontier

    def start_ticker(self, interval: float = 0.25) -> None:
        """On the reactor thread: save a burst of work followed by a quiet spell promptly."""
        if self._ticker is None and self.checkpoint is not None:
            self._ticker = LoopingCall(self._tick)
            self._ticker.start(interval, now=False)

    def _wake_from_saver(self) -> None:
        """Any thread: run :meth:`_tick` on the reactor thread soon."""
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

    def write_record(self, record: Mapping[str, Any], *, ok: bool, failed: bool = False) -> bool:
        """Commit one output record keyed by its ``url``; False if that URL was written already."""
        checkpoint = self.checkpoint
        if checkpoint is None:
            raise RuntimeError("the crawl checkpoint is not open")
        url = str(record["url"])
        return checkpoint.update(
            processed=1,
            successful=1 if ok else 0,
            failed=0 if ok else 1,
            last_item=url,
            key=url,
            record=dict(record),
            failed_record=dict(record) if failed else None,
        )

    # Closing -----------------------------------------------------------------------------------

    def settle(self, reason: str) -> None:
        """On the reactor thread: fold in the last completions and set the final status.

        ``finished`` completes the stage; ``shutdown`` (Ctrl-C, SIGTERM), ``cancelled`` and the
        ``closespider_*`` limits pause it, so the next run resumes; any other reason (an error)
        fails it with the reason recorded. The saves are submitted, not awaited.
        """
        checkpoint = self.checkpoint
        if checkpoint is None or self.closed:
            return
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self.reconcile()
        status = checkpoint.status
        if status not in (CheckpointStatus.RUNNING, CheckpointStatus.RECOVERING):
            return
        if reason == "finished" and not self._handed_out:
            progress = checkpoint.state.progress
            progress.total_items = progress.processed_items
            checkpoint.complete(wait=False)
        elif reason in ("finished", "shutdown", "cancelled") or reason.startswith("closespider_"):
            checkpoint.pause(wait=False)
        else:
            checkpoint.fail(f"spider closed: {reason}", wait=False)

    def close(self) -> None:
        """Blocking (run it in a thread): wait for the last save and release the stage lock."""
        checkpoint = self.checkpoint
        if checkpoint is None or self.closed:
            return
        self.closed = True
        checkpoint.close()
