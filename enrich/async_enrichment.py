"""Stage 3 (``stage3_async_enrichment``): fetch every valid HTML page and extract its metadata.

::

    async with AsyncEnrichmentProcessor(output_file="data/processed/stage03/enrichment_output.jsonl",
                                        checkpoint_dir="data/checkpoints") as processor:
        await processor.process_urls(urls)

    # or over stage 2's output:
    await processor.process_file("data/processed/stage02/validation_output.jsonl")

Checkpointing is built in (seed 003): progress every 100 items, resume after a crash with
nothing fetched twice that was committed and nothing lost, and each page's record written to
the output exactly once. Pages that fail go to ``<output>.failed.jsonl`` with their error;
non-HTML answers are counted as skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from common.progress import ProgressSnapshot
from common.stores.base import CheckpointStore
from common.stores.factory import StoreSwitch
from common.tracker import AsyncCheckpointTracker
from enrich.config import EnrichmentConfig
from enrich.fetch import PageFetcher
from enrich.page import enrich_page, extraction_limiter
from enrich.url_source import JsonlUrls, UrlList, UrlSource, sequence_digest

__all__ = [
    "MIN_SAVE_INTERVAL",
    "STAGE_NAME",
    "AsyncEnrichmentProcessor",
    "EnrichmentSummary",
    "output_settings",
    "read_failed_urls",
    "read_valid_pages",
    "urls_digest",
]

logger = logging.getLogger("enrich")

STAGE_NAME = "stage3_async_enrichment"

#: Stage 3's cap on the save rate (seconds), as the Scrapy stages' ``CHECKPOINT_MIN_SAVE_INTERVAL``.
#: Each save's writes and fsyncs release and retake the GIL a few dozen times; at the engine's
#: 0.05 s (~20 saves a second on the demo site) those hand-offs cost the event loop and the
#: extraction threads more CPU than the saver thread itself: stage 3 took 1.14x the CPU of the
#: same code without a checkpoint at 0.05 s, 1.09x at 0.1 s, 0.99x at 0.25 s (same runs).
MIN_SAVE_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class EnrichmentSummary:
    """What one ``process_*`` call did."""

    status: str
    progress: ProgressSnapshot
    stopped_by_signal: str | None
    #: The stage had completed before this call: nothing was fetched.
    already_completed: bool = False
    #: Input records that lead to no page (stage 2's HTTP errors, non-HTML answers).
    input_left_out: int = 0
    #: Input URLs left out as another address of a page listed before.
    input_repeats: int = 0


def read_valid_pages(path: Path | str) -> list[str]:
    """Valid HTML pages of stage 2's output (final URLs after redirects), in order, each once.

    A list in memory: :meth:`AsyncEnrichmentProcessor.process_file` streams the file instead.
    Pages are compared as the default :class:`EnrichmentConfig` does.
    """
    return list(JsonlUrls.valid_pages(path, same_page=EnrichmentConfig().same_page()))


def read_failed_urls(path: Path | str) -> list[str]:
    """URLs of a ``.failed.jsonl`` sidecar, in file order, each once (for a retry run)."""
    return list(JsonlUrls.failed_items(path))


def output_settings(config: EnrichmentConfig) -> dict[str, object]:
    """The settings that change what is written (not how fast): part of the resume guard.

    Concurrency, timeouts and backoff may change between runs without refusing a resume.
    """
    settings = config.to_dict()
    keep = ("allowed_domains", "max_body_bytes", "follow_redirects", "max_redirects", "user_agent")
    chosen = {key: settings[key] for key in keep if key in settings}
    if config.block_private_addresses:  # only when on: older checkpoints keep their hash
        chosen["block_private_addresses"] = True
        chosen["allowed_networks"] = settings["allowed_networks"]
    return chosen


def urls_digest(urls: Sequence[str]) -> str:
    """SHA-256 of the URL list itself: positions in it are what a resume skips by."""
    return sequence_digest(urls)


class AsyncEnrichmentProcessor:
    """Fetch and extract pages concurrently, with checkpointing, progress and resume.

    Args:
        output_file: the stage's JSON Lines output (``.failed.jsonl`` beside it).
        checkpoint_dir: where the stage checkpoint lives.
        config: fetching limits, timeouts, retries, allowed domains.
        session: an ``aiohttp.ClientSession`` to use (not closed by the processor).
        stage: the checkpoint's stage name.
        force, fresh: resume over a changed input/config; start over.
        handle_signals: SIGINT/SIGTERM pause the stage cleanly (see the tracker).
        auto_save_interval: checkpoint save spacing in updates.
        min_save_interval: but at most this often (seconds, default 0.25): the longer, the
            less CPU the saves take and the more work a crash redoes.
        on_progress: called with a progress snapshot about every ``progress_every`` items.
        store: the checkpoint store, or its name (``"json"``, ``"sqlite"``); see
            :func:`common.stores.open_store`. With ``"sqlite"`` every page also gets a ledger
            row (worker, status, attempts, error): ``checkpoint-manager ledger STAGE``.
        worker_id: this process's name in that ledger (default ``<host>-<pid>``).
        store_switch: the fresh switch from another store that
            :func:`common.stores.factory.select_store` chose, made once the start goes ahead.
    """

    def __init__(
        self,
        output_file: Path | str = "data/processed/stage03/enrichment_output.jsonl",
        *,
        checkpoint_dir: Path | str = "data/checkpoints",
        config: EnrichmentConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        stage: str = STAGE_NAME,
        force: bool = False,
        fresh: bool = False,
        handle_signals: bool = False,
        auto_save_interval: int = 10,
        min_save_interval: float = MIN_SAVE_INTERVAL,
        on_progress: Callable[[ProgressSnapshot], None] | None = None,
        progress_every: int = 100,
        store: CheckpointStore | str | None = None,
        worker_id: str | None = None,
        store_switch: StoreSwitch | None = None,
    ) -> None:
        self.output_file = Path(output_file)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.config = config or EnrichmentConfig()
        self.stage = stage
        self.force = force
        self.fresh = fresh
        self.handle_signals = handle_signals
        self.auto_save_interval = auto_save_interval
        self.min_save_interval = min_save_interval
        self.on_progress = on_progress
        self.progress_every = progress_every
        self.store = store
        self.worker_id = worker_id
        self.store_switch = store_switch
        self._session = session
        self._fetcher: PageFetcher | None = None
        self._extract_limiter = extraction_limiter()

    async def __aenter__(self) -> Self:
        self._fetcher = PageFetcher(self.config, session=self._session)
        await self._fetcher.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            await fetcher.__aexit__(exc_type, exc, tb)

    async def process_file(self, input_file: Path | str) -> EnrichmentSummary:
        """Enrich every valid HTML page listed in stage 2's output ``input_file`` (streamed)."""
        source = JsonlUrls.valid_pages(input_file, same_page=self.config.same_page())
        return await self.process_urls(source, input_file=input_file)

    async def process_urls(
        self, urls: Sequence[str] | UrlSource, *, input_file: Path | str | None = None
    ) -> EnrichmentSummary:
        """Enrich ``urls`` (resuming where an earlier run stopped); one record per page.

        ``urls`` is a sequence (each page once: the first of its addresses wins, compared by
        the config's :meth:`~EnrichmentConfig.same_page`) or a :class:`UrlSource` such as
        :class:`JsonlUrls` (which brings its own comparison), read in worker threads and never
        held whole in memory.
        A bad record in the source is a ``ValueError`` before anything is fetched or written.
        """
        if self._fetcher is None:
            raise RuntimeError("use 'async with AsyncEnrichmentProcessor(...) as processor' first")
        fetcher = self._fetcher
        source = (
            urls
            if isinstance(urls, UrlSource)
            else UrlList(urls, same_page=self.config.same_page())
        )
        scanned = await anyio.to_thread.run_sync(source.scan)
        # The resume guard covers the URL sequence itself, not just the input file: indices are
        # positions in it, so resuming over a different sequence would skip the wrong items.
        tracker = AsyncCheckpointTracker(
            self.checkpoint_dir,
            self.stage,
            input_file=input_file,
            config={
                "stage": self.stage,
                "fetch": output_settings(self.config),
                "urls": scanned.digest,
            },
            output_file=self.output_file,
            force=self.force,
            fresh=self.fresh,
            handle_signals=self.handle_signals,
            auto_save_interval=self.auto_save_interval,
            min_save_interval=self.min_save_interval,
            store=self.store,
            worker_id=self.worker_id,
            store_switch=self.store_switch,
        )
        already_completed = False
        async with tracker:
            if not tracker.start(total_items=scanned.count):
                already_completed = True
                logger.info("Stage %s already completed; nothing to fetch", self.stage)
            else:
                # What the input held besides these pages, for the pipeline's summary.
                tracker.checkpoint.update_metadata(
                    {"input_left_out": scanned.left_out, "input_repeats": scanned.repeats}
                )
                # The ledger's remaining work, if the store keeps one (read in a thread).
                await tracker.register_items(source, count=scanned.count)
                workers = min(self.config.concurrency, max(1, scanned.count))
                send, receive = anyio.create_memory_object_stream[tuple[int, str]](workers)
                async with anyio.create_task_group() as group:
                    group.start_soon(self._feed, tracker, source, send)
                    for _ in range(workers):
                        group.start_soon(self._worker, tracker, fetcher, receive.clone())
                    receive.close()  # the workers' clones keep the stream open
        stopped = tracker.stopped_by_signal
        return EnrichmentSummary(
            status=tracker.checkpoint.status.value,
            progress=tracker.progress(),
            stopped_by_signal=stopped.name if stopped else None,
            already_completed=already_completed,
            input_left_out=scanned.left_out,
            input_repeats=scanned.repeats,
        )

    @staticmethod
    async def _feed(
        tracker: AsyncCheckpointTracker,
        source: UrlSource,
        send: MemoryObjectSendStream[tuple[int, str]],
    ) -> None:
        # One reader hands the workers the unfinished items through a stream as small as the
        # worker count, so memory stays bounded by the concurrency whatever the input's size,
        # and items already done (in any order) are skipped exactly.
        batches = source.batches()
        index = 0
        try:
            async with send:
                while (batch := await anyio.to_thread.run_sync(next, batches, None)) is not None:
                    for url in batch:
                        if not tracker.should_skip(index):
                            await send.send((index, url))
                        index += 1
        finally:
            # Closing the generator closes the input file: off the loop too.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(batches.close)

    async def _worker(
        self,
        tracker: AsyncCheckpointTracker,
        fetcher: PageFetcher,
        todo: MemoryObjectReceiveStream[tuple[int, str]],
    ) -> None:
        async with todo:
            async for index, url in todo:
                await self._record(tracker, index, url, fetcher)

    async def _record(
        self, tracker: AsyncCheckpointTracker, index: int, url: str, fetcher: PageFetcher
    ) -> None:
        page = await enrich_page(fetcher, url, self._extract_limiter)
        if page.outcome == "ok":
            tracker.update(
                processed=1,
                successful=1,
                last_item=url,
                index=index,
                record=page.record,
                attempts=page.attempts,
            )
        elif page.outcome == "skipped":
            tracker.update(
                processed=1, skipped=1, last_item=url, index=index, attempts=page.attempts
            )
        else:
            tracker.update(
                processed=1,
                failed=1,
                last_item=url,
                index=index,
                failed_record=page.record,
                attempts=page.attempts,
            )
        if (
            self.on_progress is not None
            and tracker.checkpoint.state.progress.processed_items % (self.progress_every) == 0
        ):
            self.on_progress(tracker.progress())
