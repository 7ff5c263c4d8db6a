"""``python -m enrich.worker``: one worker of an enrichment stage shared through PostgreSQL.

Join a worker from any machine that reaches the database and the site::

    RESUMABLE_CRAWL_DSN=postgresql://user:pass@db-host:5432/crawl \\
        python -m enrich.worker --stage stage3_async_enrichment

The stage must have been loaded by a starter (``python -m enrich --workers N --dsn DSN``, or
the orchestrator with ``--workers N --dsn DSN``); the worker takes its fetch settings from
there, so every worker writes the same records. It claims batches, fetches and extracts their
pages, commits each batch with its records in one transaction, and exits once no item is left
(it keeps watching while other workers hold leases, to take over a batch whose worker died).
The starter exports the records to the stage's files at the end.

    python -m enrich.worker --stage S --status [--json]    # aggregated progress, every worker

SIGINT/SIGTERM: unfinished batches are given back (not counted as an attempt), exit 130/143.
Exit codes: 0 no work left, 1 error, 2 usage, 130/143 stopped by a signal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
import psycopg

from common.argtypes import seconds_argument
from common.errors import CheckpointError
from common.work_queue import (
    Batch,
    ItemResult,
    LeaseKeeper,
    LeaseLostError,
    StageRecord,
    WorkQueue,
    default_worker_id,
    resolve_dsn,
)
from common.work_queue.dsn import DSN_ENV
from enrich.async_enrichment import STAGE_NAME
from enrich.config import EnrichmentConfig
from enrich.fetch import PageFetcher
from enrich.page import enrich_page, extraction_limiter

__all__ = ["WorkerOptions", "WorkerStats", "fetch_config", "main", "run_worker"]

logger = logging.getLogger("enrich.worker")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How one worker runs.

    ``concurrency`` (fetches in flight) defaults to the stage's setting; ``batch_size`` to the
    concurrency; ``per_host_delay`` (seconds between request starts to one host) to 0. ``batches_in_flight`` batches are leased at once, so the next one is already
    claimed while the last pages of one are still loading.
    """

    dsn: str
    stage: str = STAGE_NAME
    worker_id: str = field(default_factory=default_worker_id)
    concurrency: int | None = None
    per_host_delay: float = 0.0
    batch_size: int | None = None
    batches_in_flight: int = 2
    poll_interval: float = 0.5
    handle_signals: bool = True


@dataclass(slots=True)
class WorkerStats:
    """What a worker did, with per-batch claim and commit latencies (seconds)."""

    worker: str
    batches: int = 0
    items: int = 0
    lost_batches: int = 0
    claim_seconds: list[float] = field(default_factory=list)
    commit_seconds: list[float] = field(default_factory=list)
    stopped_by_signal: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "worker": self.worker,
            "batches": self.batches,
            "items": self.items,
            "lost_batches": self.lost_batches,
            "claim_seconds": self.claim_seconds,
            "commit_seconds": self.commit_seconds,
            "stopped_by_signal": self.stopped_by_signal,
        }


def fetch_config(
    record: StageRecord, concurrency: int | None = None, per_host_delay: float = 0.0
) -> EnrichmentConfig:
    """The fetch settings the starter stored with the stage, with this worker's concurrency
    (when given) and pacing: neither changes what is written, so neither is stored."""
    settings = dict(record.config.get("fetch") or {})
    config = EnrichmentConfig.from_mapping(
        settings, source=f"the fetch settings stored with stage {record.stage}"
    )
    if concurrency is not None:
        config = replace(config, concurrency=concurrency)
    return replace(config, per_host_delay=per_host_delay)


class _Worker:
    def __init__(self, options: WorkerOptions, record: StageRecord) -> None:
        self.options = options
        self.config = fetch_config(record, options.concurrency, options.per_host_delay)
        self.batch_size = options.batch_size or self.config.concurrency
        self.stats = WorkerStats(options.worker_id)
        self.keeper = LeaseKeeper(
            self._open_queue, options.worker_id, interval=record.lease_seconds / 3
        )
        self.limiter = extraction_limiter()
        self.stop_scope = anyio.CancelScope()

    def _open_queue(self) -> WorkQueue:
        return WorkQueue(self.options.dsn, self.options.stage)

    async def run(self) -> None:
        self.keeper.start()
        try:
            async with PageFetcher(self.config) as fetcher, anyio.create_task_group() as outer:
                if self.options.handle_signals:
                    await outer.start(self._watch_signals)
                with self.stop_scope:
                    async with anyio.create_task_group() as slots:
                        for _ in range(max(1, self.options.batches_in_flight)):
                            slots.start_soon(self._slot, fetcher)
                outer.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(self.keeper.stop)

    async def _watch_signals(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self.stats.stopped_by_signal is None:
                    self.stats.stopped_by_signal = signal.Signals(signum).name
                    logger.info(
                        "Worker %s: %s, giving back unfinished batches",
                        self.options.worker_id,
                        self.stats.stopped_by_signal,
                    )
                    self.stop_scope.cancel()

    async def _slot(self, fetcher: PageFetcher) -> None:
        queue = await anyio.to_thread.run_sync(self._open_queue)
        try:
            while True:
                started = time.perf_counter()
                # Shielded: a stop arriving during the claim must not drop the claimed batch
                # on the floor (it would stay leased to us until its lease ran out); _do gives
                # it back instead.
                with anyio.CancelScope(shield=True):
                    batch = await anyio.to_thread.run_sync(
                        queue.claim, self.options.worker_id, self.batch_size
                    )
                if batch is None:
                    if await anyio.to_thread.run_sync(queue.remaining) == 0:
                        return
                    # Other workers hold the rest: watch for a lease that runs out.
                    await anyio.sleep(self.options.poll_interval)
                    continue
                self.stats.claim_seconds.append(time.perf_counter() - started)
                await self._do(queue, fetcher, batch)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(queue.close)

    async def _do(self, queue: WorkQueue, fetcher: PageFetcher, batch: Batch) -> None:
        self.keeper.track(batch.token)
        settled = False
        try:
            results = await self._process(fetcher, batch)
            if self.keeper.is_lost(batch.token):
                raise LeaseLostError(
                    f"worker {batch.worker} lost the lease of a batch of {len(batch.items)} "
                    f"items to another worker; its results are dropped",
                    stage=batch.stage,
                )
            started = time.perf_counter()
            # Not abandoned on cancellation: a commit in progress finishes (or rolls back).
            await anyio.to_thread.run_sync(queue.commit, batch, results)
            self.stats.commit_seconds.append(time.perf_counter() - started)
            settled = True
            self.stats.batches += 1
            self.stats.items += len(results)
        except LeaseLostError as exc:
            settled = True
            self.stats.lost_batches += 1
            self.stats.items += exc.committed
            logger.warning("%s", exc)
        except Exception as exc:
            settled = True
            # The work itself failed: the claim counts as an attempt, so a poison item ends
            # up abandoned instead of killing worker after worker.
            error = f"{type(exc).__name__}: {exc}"
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(queue.release, batch, error=error))
            raise
        finally:
            self.keeper.untrack(batch.token)
            if not settled:  # cancelled (a signal): give the batch back for another worker
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(queue.release, batch)

    async def _process(self, fetcher: PageFetcher, batch: Batch) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(batch.items)

        async def one(index: int, url: str) -> None:
            page = await enrich_page(fetcher, url, self.limiter)
            results[index] = ItemResult(url, page.outcome, page.record, page.error)

        async with anyio.create_task_group() as group:
            for index, item in enumerate(batch.items):
                group.start_soon(one, index, item.key)
        return [result for result in results if result is not None]


async def run_worker(options: WorkerOptions) -> WorkerStats:
    """Work on ``options.stage`` until no item is left (or a signal stops the worker)."""
    queue = await anyio.to_thread.run_sync(WorkQueue, options.dsn, options.stage)
    try:
        record = await anyio.to_thread.run_sync(queue.stage_record)
        worker = _Worker(options, record)
        await anyio.to_thread.run_sync(queue.register_worker, options.worker_id)
        logger.info(
            "Worker %s joined %s at %s (batches of %d, %d fetches in flight)",
            options.worker_id,
            options.stage,
            queue.location,
            worker.batch_size,
            worker.config.concurrency,
        )
        try:
            await worker.run()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    partial(queue.heartbeat, options.worker_id, stopped=True)
                )
        logger.info(
            "Worker %s done: %d items in %d batches (%d batches lost to a takeover)",
            options.worker_id,
            worker.stats.items,
            worker.stats.batches,
            worker.stats.lost_batches,
        )
        return worker.stats
    finally:
        await anyio.to_thread.run_sync(queue.close)


def print_status(dsn: str, stage: str, *, as_json: bool) -> None:
    """Print the stage's aggregated progress and every worker's share."""
    with WorkQueue(dsn, stage) as queue:
        progress = queue.progress()
    if as_json:
        print(json.dumps(progress.to_dict(), indent=2))
        return
    print(f"{stage} at {queue.location}")
    print(progress.line())
    for worker in progress.workers:
        info = worker.to_dict()
        print(
            f"  {worker.worker:<32} {info['state']:<8} done {worker.done:>7}  failed "
            f"{worker.failed:>5}  in flight {worker.leased:>4}  seen {info['seconds_since_seen']}s ago"
        )


def _root_cause(exc: BaseException) -> BaseException:
    """The first real error inside the exception groups a task group raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m enrich.worker",
        description="One worker of an enrichment stage shared through PostgreSQL.",
        epilog=f"The connection string comes from --dsn or ${DSN_ENV}. Exit codes: 0 no work "
        "left, 1 error, 2 usage, 130/143 stopped by SIGINT/SIGTERM.",
    )
    parser.add_argument("--stage", default=STAGE_NAME, help=f"default {STAGE_NAME}")
    parser.add_argument("--dsn", help=f"PostgreSQL connection string (default ${DSN_ENV})")
    parser.add_argument("--worker-id", help="name shown in the progress (default host:pid)")
    parser.add_argument("--concurrency", type=int, help="fetches in flight (default: the stage's)")
    parser.add_argument(
        "--delay",
        type=seconds_argument,
        default=0.0,
        metavar="SECONDS",
        help="seconds between request starts to one host (default 0)",
    )
    parser.add_argument("--batch-size", type=int, help="items per claim (default: concurrency)")
    parser.add_argument("--batches-in-flight", type=int, default=2)
    parser.add_argument("--status", action="store_true", help="print aggregated progress, exit")
    parser.add_argument("--json", action="store_true", help="with --status: JSON")
    parser.add_argument("--stats-file", type=Path, help="write this worker's batch timings here")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    dsn = resolve_dsn(args.dsn)
    if dsn is None:
        parser.error(f"no database: give --dsn or set {DSN_ENV}")
    for name in ("concurrency", "batch_size", "batches_in_flight"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    try:
        if args.status:
            print_status(dsn, args.stage, as_json=args.json)
            return 0
        options = WorkerOptions(
            dsn=dsn,
            stage=args.stage,
            worker_id=args.worker_id or default_worker_id(),
            concurrency=args.concurrency,
            per_host_delay=args.delay,
            batch_size=args.batch_size,
            batches_in_flight=args.batches_in_flight,
        )
        stats = asyncio.run(run_worker(options))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, not a traceback: the cause is in the log above
        error = _root_cause(exc)
        if not isinstance(error, CheckpointError | ValueError | psycopg.Error | OSError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.stats_file is not None:
        args.stats_file.write_text(json.dumps(stats.to_dict()) + "\n", encoding="utf-8")
    if stats.stopped_by_signal == "SIGINT":
        return 130
    if stats.stopped_by_signal == "SIGTERM":
        return 143
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
