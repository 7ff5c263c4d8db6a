"""Start an enrichment stage shared by many workers through PostgreSQL, watch it, export it.

    python -m enrich --workers 4 --dsn postgresql://user@db-host/crawl [--data-dir data]

The starter (this module) does what only one process should do; the workers
(:mod:`enrich.worker`, N of them here and any number joined from other machines) do the pages:

1. start the stage's engine record (``EnhancedCheckpoint``, in the checkpoint directory as for
   the single-process stage), which guards the input, the settings and the output file exactly
   as that stage does (another stage's output, or a file holding records this checkpoint never
   wrote, is refused here, before anything is loaded: the export replaces the file);
2. load the URLs into the shared queue once (a rerun finds them there and resumes);
3. spawn the local workers and mirror the queue's aggregated progress into the engine record,
   so the orchestrator, the checkpoint CLI and the log lines show it like any other stage;
4. once no item remains, export the committed records to the stage's JSON Lines file and its
   ``.failed.jsonl`` sidecar (exactly once: see :mod:`common.work_queue.export`), and complete.

SIGINT/SIGTERM: the workers give their batches back and the stage is paused; run the same
command again to resume. A worker killed outright loses only its leased batch, which another
worker takes over when the lease runs out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from common.checkpoint import EnhancedCheckpoint
from common.hashing import config_hash
from common.io.process import child_popen_options
from common.outputs import failed_sidecar_path
from common.status import CheckpointStatus
from common.stores.factory import StoreSwitch
from common.work_queue import (
    DSN_ENV,
    QueueProgress,
    WorkQueue,
    check_reachable,
    export_outputs,
)
from enrich.async_enrichment import STAGE_NAME, output_settings, urls_digest
from enrich.config import EnrichmentConfig

__all__ = ["DistributedOptions", "DistributedSummary", "run_distributed"]

logger = logging.getLogger("enrich")

_LOG_EVERY = 5.0
_WORKER_STOP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class DistributedOptions:
    """How the shared stage runs.

    ``workers`` local worker processes (0: only workers joined from elsewhere); a lease lasts
    ``lease_seconds`` (extended every third of it while a worker lives; the time a dead
    worker's batch waits before another takes it); an item claimed ``max_attempts`` times
    without a commit is abandoned as failed. ``per_host_delay`` paces each local worker's
    requests to one host (:attr:`EnrichmentConfig.per_host_delay`; workers joined from
    elsewhere take their own ``--delay``).
    """

    dsn: str
    workers: int
    lease_seconds: float = 30.0
    max_attempts: int = 3
    batch_size: int | None = None
    poll_interval: float = 0.5
    per_host_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not self.lease_seconds > 0:
            raise ValueError(f"lease_seconds must be > 0, got {self.lease_seconds}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True, slots=True)
class DistributedSummary:
    """How the run ended: the engine record's status and the queue's last progress."""

    status: str
    progress: QueueProgress | None
    stopped_by_signal: str | None
    #: The stage had completed before this call: nothing was loaded or fetched.
    already_completed: bool = False


class _Stop:
    """The first SIGINT/SIGTERM asks for a clean stop; a second kills the workers at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.event = threading.Event()
        self.workers: list[subprocess.Popen[bytes]] = []

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            for worker in self.workers:
                with contextlib.suppress(OSError):
                    worker.kill()
            os._exit(128 + self.signum)
        self.signum = signum
        self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def run_distributed(
    urls: Sequence[str],
    *,
    options: DistributedOptions,
    output_file: Path | str,
    checkpoint_dir: Path | str,
    config: EnrichmentConfig,
    input_file: Path | str | None = None,
    stage: str = STAGE_NAME,
    force: bool = False,
    fresh: bool = False,
    handle_signals: bool = True,
    store: str | None = None,
    store_switch: StoreSwitch | None = None,
) -> DistributedSummary:
    """Run ``stage`` over ``urls`` with workers sharing it through ``options.dsn``.

    ``store`` names the checkpoint store of the stage's engine record (``json``, ``sqlite``),
    the same as the other stages' in ``checkpoint_dir``; ``store_switch`` is the fresh switch
    to it that :func:`common.stores.factory.select_store` chose (made by the record's start).
    """
    urls = list(dict.fromkeys(urls))
    output_file = Path(output_file)
    failed_file = failed_sidecar_path(output_file)
    # "mode" keeps a single-process checkpoint (whose output is a local journal) from being
    # resumed as a shared one, and the other way round: switching needs --fresh.
    guard = {
        "stage": stage,
        "fetch": output_settings(config),
        "urls": urls_digest(urls),
        "mode": "postgresql-workers",
    }
    stop = _Stop()
    # Before the record's start, which writes it (and makes a fresh store switch): a server
    # that cannot be reached refuses the run with nothing on disk changed.
    check_reachable(options.dsn, stage)
    with EnhancedCheckpoint(
        Path(checkpoint_dir) / f"{stage}.json",
        auto_save_interval=1,
        min_save_interval=0.5,
        store=store,
        store_switch=store_switch,
    ) as checkpoint:
        restarting = checkpoint.state.status is CheckpointStatus.COMPLETED
        if not checkpoint.start(
            total_items=len(urls),
            input_file=input_file,
            config=guard,
            output_file=output_file,
            force=force,
            fresh=fresh,
        ):
            logger.info("Stage %s already completed; nothing to fetch", stage)
            return DistributedSummary(checkpoint.status.value, None, None, already_completed=True)
        with WorkQueue(options.dsn, stage) as queue:
            loaded = queue.load(
                ((url, None) for url in urls),
                input_hash=config_hash(guard),
                config={"fetch": config.to_dict()},
                lease_seconds=options.lease_seconds,
                max_attempts=options.max_attempts,
                force=force,
                # The engine chose to start over (completed before, input changed since).
                fresh=fresh or restarting,
            )
            logger.info(
                "Stage %s %s in the work queue at %s (%d items); join more workers with: "
                "%s=%s python -m enrich.worker --stage %s",
                stage,
                "loaded" if loaded.created else "resumed",
                queue.location,
                loaded.stage.total,
                DSN_ENV,
                queue.location,
                stage,
            )
            checkpoint.state.metadata["work_queue"] = {"location": queue.location, "stage": stage}
            checkpoint.mark_changed()
            with contextlib.ExitStack() as stack:
                if handle_signals:
                    stack.enter_context(stop.installed())
                progress = _supervise(queue, checkpoint, options, stage, stop)
            if stop.signum is not None:
                checkpoint.pause()
                return DistributedSummary(
                    checkpoint.status.value, progress, signal.Signals(stop.signum).name
                )
            if progress.remaining:
                checkpoint.fail(
                    f"every local worker exited with {progress.remaining} items left and no "
                    f"other worker alive (see the worker log lines above)"
                )
                return DistributedSummary(checkpoint.status.value, progress, None)
            exported = export_outputs(queue, output_file, failed_file)
            logger.info(
                "Exported %d records to %s and %d to %s",
                exported.output_lines,
                output_file,
                exported.failed_lines,
                failed_file,
            )
            _mirror(checkpoint, queue.progress())
            checkpoint.complete()
            return DistributedSummary(checkpoint.status.value, progress, None)


def _supervise(
    queue: WorkQueue,
    checkpoint: EnhancedCheckpoint,
    options: DistributedOptions,
    stage: str,
    stop: _Stop,
) -> QueueProgress:
    """Run the local workers until nothing remains, a signal arrives, or all of them died."""
    # A rerun after a crash during the export finds nothing left: no worker to start.
    idle = queue.remaining() == 0
    workers = [] if idle else [_spawn_worker(options, stage) for _ in range(options.workers)]
    stop.workers = workers
    last_log = 0.0
    try:
        while True:
            asked = time.monotonic()
            progress = queue.progress()
            # The counts scan the stage's items: on a big stage, poll less often, so that
            # watching never takes more than a tenth of a database core.
            pause = max(options.poll_interval, 10 * (time.monotonic() - asked))
            _mirror(checkpoint, progress)
            now = time.monotonic()
            if now - last_log >= _LOG_EVERY:
                last_log = now
                logger.info("%s: %s", stage, progress.line())
            if progress.remaining == 0 or stop.signum is not None:
                break
            gone = workers and all(w.poll() is not None for w in workers)
            if gone and progress.live_workers == 0:
                codes = [w.returncode for w in workers]
                logger.error("All %d local workers exited (codes %s)", len(workers), codes)
                break
            stop.event.wait(pause)
    finally:
        _stop_workers(workers, signal.SIGTERM if stop.signum is not None else None)
    return queue.progress()


def _spawn_worker(options: DistributedOptions, stage: str) -> subprocess.Popen[bytes]:
    # The connection string (and any password in it) goes by environment, never argv.
    env = {**os.environ, DSN_ENV: options.dsn, "PYTHONUNBUFFERED": "1"}
    command = worker_command(options, stage)
    return subprocess.Popen(command, env=env, **child_popen_options())  # noqa: S603 - our argv


def worker_command(options: DistributedOptions, stage: str) -> list[str]:
    """The command line of a local worker (its id is its own ``default_worker_id()``)."""
    command = [sys.executable, "-m", "enrich.worker", "--stage", stage]
    if options.batch_size is not None:
        command += ["--batch-size", str(options.batch_size)]
    if options.per_host_delay:
        command += ["--delay", repr(options.per_host_delay)]
    return command


def _stop_workers(workers: list[subprocess.Popen[bytes]], signum: int | None) -> None:
    """Wait for the workers (asking them to stop first with ``signum``), then kill stragglers."""
    for worker in workers:
        if signum is not None and worker.poll() is None:
            with contextlib.suppress(OSError):
                worker.send_signal(signum)
    deadline = time.monotonic() + _WORKER_STOP_TIMEOUT
    for worker in workers:
        try:
            worker.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("Worker pid %d did not stop in time: killing it", worker.pid)
            worker.kill()
            worker.wait()


def _mirror(checkpoint: EnhancedCheckpoint, progress: QueueProgress) -> None:
    """Bring the engine record's counts up to the queue's (they only ever grow)."""
    counts = checkpoint.state.progress
    successful = max(0, progress.successful - counts.successful_items)
    failed = max(0, progress.failed - counts.failed_items)
    skipped = max(0, progress.skipped - counts.skipped_items)
    metadata = checkpoint.state.metadata.setdefault("work_queue", {})
    metadata["workers"] = [worker.to_dict() for worker in progress.workers]
    metadata["in_flight"] = progress.leased
    metadata["throughput"] = round(progress.throughput, 2)
    checkpoint.mark_changed()  # saved by the timer even when no count moved
    if successful or failed or skipped:
        checkpoint.update(
            processed=successful + failed + skipped,
            successful=successful,
            failed=failed,
            skipped=skipped,
        )
