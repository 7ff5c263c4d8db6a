"""The Crawlee for Python peer of ``python -m tools.bench crawl`` (needs the ``bench`` extra).

    python -m tools.bench.crawlee_peer START_URL STORAGE_DIR OUTPUT {file|memory} [DEPTH]

A ``ParselCrawler`` doing what the discovery spider does: one record per page fetched, every
same-host link followed with ``enqueue_links``, robots.txt obeyed, concurrency 32, the given
crawl depth. ``file`` keeps the request queue and dataset on disk (Crawlee's crash-safe mode),
``memory`` in memory. Prints one JSON line: pages handled and the crawl's seconds. The records
are written to ``OUTPUT`` (JSON Lines) so the bench can check every crawler found the same URLs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

CONCURRENCY = 32


async def crawl(start_url: str, storage_dir: Path, output: Path, storage: str, depth: int) -> None:
    from crawlee import ConcurrencySettings
    from crawlee.configuration import Configuration
    from crawlee.crawlers import ParselCrawler, ParselCrawlingContext
    from crawlee.storage_clients import FileSystemStorageClient, MemoryStorageClient

    configuration = Configuration(storage_dir=str(storage_dir), purge_on_start=True)
    client = FileSystemStorageClient() if storage == "file" else MemoryStorageClient()
    crawler = ParselCrawler(
        configuration=configuration,
        storage_client=client,
        concurrency_settings=ConcurrencySettings(
            min_concurrency=CONCURRENCY,
            desired_concurrency=CONCURRENCY,
            max_concurrency=CONCURRENCY,
        ),
        respect_robots_txt_file=True,
        max_crawl_depth=depth,
        max_request_retries=2,
        configure_logging=False,
    )
    pages = 0

    @crawler.router.default_handler  # type: ignore[untyped-decorator,unused-ignore]  # typed only with crawlee installed
    async def handler(context: ParselCrawlingContext) -> None:
        nonlocal pages
        pages += 1
        await context.push_data(
            {
                "url": context.request.url,
                "status": context.http_response.status_code,
                "depth": context.request.crawl_depth,
            }
        )
        await context.enqueue_links()

    started = time.monotonic()
    await crawler.run([start_url])
    seconds = time.monotonic() - started
    data = await crawler.get_data()
    with output.open("w", encoding="utf-8") as handle:
        for item in data.items:
            handle.write(json.dumps(item) + "\n")
    print(json.dumps({"pages": pages, "seconds": seconds}), flush=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    start_url, storage_dir, output, storage = argv[:4]
    depth = int(argv[4]) if len(argv) > 4 else 10
    asyncio.run(crawl(start_url, Path(storage_dir), Path(output), storage, depth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
