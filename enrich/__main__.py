"""``python -m enrich``: run stage 3 over stage 2's output.

    python -m enrich [--data-dir data] [--input FILE] [--output FILE] [--checkpoint-dir DIR]
                     [--concurrency N] [--per-host N] [--allowed-domain HOST ...]
                     [--force] [--fresh] [--verbose]
    python -m enrich --retry-failed [--data-dir data]

``--retry-failed`` fetches again only the URLs of ``<output>.failed.jsonl``, as its own stage
(``stage3_async_enrichment_retry``) writing ``<output stem>.retry.jsonl`` (and its own
``.failed.jsonl`` for what still fails); the main output is never rewritten.

Exit codes: 0 completed (or already completed), 1 error or stage failed, 2 usage,
130/143 paused by SIGINT/SIGTERM (the checkpoint is saved; run again to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from common.errors import CheckpointError
from enrich.async_enrichment import STAGE_NAME, AsyncEnrichmentProcessor
from enrich.config import EnrichmentConfig
from enrich.url_source import JsonlUrls

logger = logging.getLogger("enrich")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m enrich",
        description="Stage 3: fetch every valid HTML page and extract its metadata.",
        epilog="Exit codes: 0 done, 1 error, 2 usage, 130/143 paused by SIGINT/SIGTERM.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--input", type=Path, help="stage 2 output (default under --data-dir)")
    parser.add_argument("--output", type=Path, help="stage 3 output (default under --data-dir)")
    parser.add_argument("--checkpoint-dir", type=Path, help="default: DATA_DIR/checkpoints")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-host", type=int, default=16)
    parser.add_argument(
        "--allowed-domain",
        action="append",
        default=[],
        help="host allowed for fetching and redirects (repeatable; default: the input's hosts)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="fetch again only the URLs in the output's .failed.jsonl sidecar",
    )
    parser.add_argument("--force", action="store_true", help="resume over a changed input")
    parser.add_argument("--fresh", action="store_true", help="forget progress, start over")
    parser.add_argument("--verbose", action="store_true")
    return parser


async def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    input_file = args.input or data_dir / "processed/stage02/validation_output.jsonl"
    output_file = args.output or data_dir / "processed/stage03/enrichment_output.jsonl"
    checkpoint_dir = args.checkpoint_dir or data_dir / "checkpoints"
    stage = STAGE_NAME
    source = JsonlUrls.valid_pages(input_file)
    if args.retry_failed:
        input_file = output_file.with_name(output_file.stem + ".failed.jsonl")
        output_file = output_file.with_name(output_file.stem + ".retry.jsonl")
        stage = STAGE_NAME + "_retry"
        source = JsonlUrls.failed_items(input_file)
    if not input_file.is_file():
        hint = "nothing failed yet" if args.retry_failed else "run validation first"
        print(f"error: input {input_file} does not exist ({hint})", file=sys.stderr)
        return 1
    try:
        # Streamed, not loaded: read twice here (repeats, count, hosts), once more to fetch.
        scanned = await asyncio.to_thread(source.scan)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    domains = tuple(args.allowed_domain) or tuple(sorted(scanned.hosts))
    config = EnrichmentConfig(
        concurrency=args.concurrency,
        per_host_concurrency=args.per_host,
        allowed_domains=domains,
    )
    processor = AsyncEnrichmentProcessor(
        output_file,
        checkpoint_dir=checkpoint_dir,
        config=config,
        stage=stage,
        force=args.force,
        fresh=args.fresh,
        handle_signals=True,
    )
    async with processor:
        summary = await processor.process_urls(source, input_file=input_file)
    if summary.stopped_by_signal == "SIGINT":
        return 130
    if summary.stopped_by_signal == "SIGTERM":
        return 143
    return 0 if summary.status == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(run(args))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
