"""Stage 3 with checkpointing off: the benchmark's baseline for ``python -m enrich``.

    python -m tools.bench.pipeline_off [the options of python -m enrich]

Not a user option: ``python -m tools.bench pipeline`` runs this in place of ``python -m enrich``
to measure what checkpointing costs the whole pipeline. It is the code path of
:meth:`enrich.async_enrichment.AsyncEnrichmentProcessor.process_urls` minus the tracker: the
same command line and config (``enrich.__main__.prepare``), the same streamed input, one
reader feeding the same number of workers through a stream as small as the worker count, the
same :class:`~enrich.fetch.PageFetcher` and :func:`~enrich.page.enrich_page`. In place of the
tracker's journals, each record is appended to a plain buffered JSON Lines file (the failed
ones to the ``.failed.jsonl`` sidecar), as a script without a checkpoint would: no resume, no
progress, no saves, no lock.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import IO, Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from common.outputs import failed_sidecar_path
from enrich.__main__ import Job, build_parser, prepare
from enrich.fetch import PageFetcher
from enrich.page import enrich_page, extraction_limiter

__all__ = ["main", "run_untracked"]


def _write(output: IO[str], record: dict[str, Any]) -> None:
    output.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


async def run_untracked(job: Job) -> tuple[int, int, int]:
    """Enrich every page of ``job`` without a checkpoint; ``(written, failed, skipped)``."""
    source = job.source
    scanned = await anyio.to_thread.run_sync(source.scan)
    limiter = extraction_limiter()
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    job.output_file.parent.mkdir(parents=True, exist_ok=True)
    # Large buffers: the baseline writes as cheaply as a plain script can.
    with (
        job.output_file.open("w", encoding="utf-8", buffering=1 << 20) as output,
        failed_sidecar_path(job.output_file).open(
            "w", encoding="utf-8", buffering=1 << 20
        ) as failed,
    ):

        async def feed(send: MemoryObjectSendStream[tuple[int, str]]) -> None:
            batches = source.batches()
            index = 0
            async with send:
                while (batch := await anyio.to_thread.run_sync(next, batches, None)) is not None:
                    for url in batch:
                        await send.send((index, url))
                        index += 1

        async def worker(
            fetcher: PageFetcher, todo: MemoryObjectReceiveStream[tuple[int, str]]
        ) -> None:
            async with todo:
                async for _, url in todo:
                    page = await enrich_page(fetcher, url, limiter)
                    counts[page.outcome] += 1
                    if page.record is not None:
                        _write(output if page.outcome == "ok" else failed, page.record)

        async with PageFetcher(job.config) as fetcher:
            workers = min(job.config.concurrency, max(1, scanned.count))
            send, receive = anyio.create_memory_object_stream[tuple[int, str]](workers)
            async with anyio.create_task_group() as group:
                group.start_soon(feed, send)
                for _ in range(workers):
                    group.start_soon(worker, fetcher, receive.clone())
                receive.close()
    return counts["ok"], counts["failed"], counts["skipped"]


def main(argv: list[str] | None = None) -> int:
    """Parse ``python -m enrich``'s options and run the stage untracked."""
    args = build_parser().parse_args(argv)
    job = prepare(args)
    if isinstance(job, int):
        return job
    written, failed, skipped = asyncio.run(run_untracked(job))
    print(f"{written:,} written, {failed:,} failed, {skipped:,} skipped (not HTML), untracked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
