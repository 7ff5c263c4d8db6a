"""``python -m enrich``: run stage 3 over stage 2's output.

    python -m enrich [--data-dir data] [--input FILE] [--output FILE] [--checkpoint-dir DIR]
                     [--concurrency N] [--per-host N] [--delay S] [--allowed-domain HOST ...]
                     [--block-private-addresses [--allow-network CIDR ...]]
                     [--user-agent UA] [--directory-index NAMES]
                     [--store json|sqlite] [--worker-id ID] [--force] [--fresh] [--verbose]
    python -m enrich --retry-failed [--data-dir data]
    python -m enrich --workers N [--dsn DSN] [--lease-seconds S] [--max-attempts K]
                     [--batch-size B] [...the options above]

``--workers N`` shares the stage with N local worker processes through PostgreSQL (``--dsn``,
or ``$RESUMABLE_CRAWL_DSN``); more can join from other machines with ``python -m enrich.worker``.
The records are exported to the usual output files once every page is done (see
:mod:`enrich.distributed`). Without ``--workers`` the stage runs in this one process.

``--retry-failed`` fetches again only the URLs of ``<output>.failed.jsonl``, as its own stage
(``stage3_async_enrichment_retry``) writing ``<output stem>.retry.jsonl`` (and its own
``.failed.jsonl`` for what still fails); the main output is never rewritten.

It ends with a summary on stdout: what the stage did, then where the records and the failed
ones are (see :func:`summary_lines`).

Exit codes: 0 completed (or already completed), 1 error or stage failed, 2 usage,
130/143 paused by SIGINT/SIGTERM (the checkpoint is saved; run again to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.argtypes import count_argument, seconds_argument
from common.errors import CheckpointError, ConfigChangedError, InputChangedError
from common.io.paths import directory_problem
from common.outputs import failed_sidecar_path
from common.stores.factory import StoreChoice, select_store, store_argument
from common.work_queue.dsn import DSN_ENV, resolve_dsn
from enrich.addresses import add_allow_network_option
from enrich.async_enrichment import STAGE_NAME, AsyncEnrichmentProcessor, EnrichmentSummary
from enrich.config import DEFAULT_USER_AGENT, EnrichmentConfig
from enrich.reasons import not_fetched_reasons
from enrich.same_page import DEFAULT_DIRECTORY_INDEX, page_key_function
from enrich.url_source import JsonlUrls

if TYPE_CHECKING:
    from enrich.distributed import DistributedSummary

logger = logging.getLogger("enrich")


def _worker_id(text: str) -> str:
    if not text.strip() or len(text) > 200:
        raise argparse.ArgumentTypeError(f"must be 1 to 200 characters, got {text!r}")
    return text


def _directory_index(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    try:
        EnrichmentConfig(directory_index=names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _user_agent(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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
    parser.add_argument(
        "--concurrency", type=count_argument, default=64, help="requests in flight (default 64)"
    )
    parser.add_argument(
        "--per-host",
        type=count_argument,
        default=16,
        help="requests in flight to one host (default 16)",
    )
    parser.add_argument(
        "--delay",
        type=seconds_argument,
        default=0.0,
        metavar="SECONDS",
        help="seconds between request starts to one host, retries and redirects included "
        "(default 0); on a site you do not own, what its robots.txt Crawl-delay asks",
    )
    parser.add_argument(
        "--allowed-domain",
        action="append",
        default=[],
        help="host allowed for fetching and redirects (repeatable; default: the input's hosts)",
    )
    parser.add_argument(
        "--block-private-addresses",
        action="store_true",
        help="refuse private, loopback and link-local addresses, also after redirects and DNS "
        "answers (SSRF protection; the orchestrator turns it on with --env production)",
    )
    add_allow_network_option(parser)
    parser.add_argument(
        "--user-agent",
        type=_user_agent,
        default=DEFAULT_USER_AGENT,
        help=f"User-Agent header of every request (default {DEFAULT_USER_AGENT!r}); on a real "
        "site, name your crawler and a way to reach you",
    )
    parser.add_argument(
        "--directory-index",
        type=_directory_index,
        default=DEFAULT_DIRECTORY_INDEX,
        metavar="NAMES",
        help="comma-separated file names that mean their directory: one record for /d/ and "
        f"/d/index.html (default {','.join(DEFAULT_DIRECTORY_INDEX)}; '' keeps them apart). "
        "Fragments, host case, default ports and query order never make two pages",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="fetch again only the URLs in the output's .failed.jsonl sidecar",
    )
    parser.add_argument(
        "--store",
        type=store_argument,
        metavar="STORE",
        help="checkpoint store (default: sqlite if the checkpoint directory holds "
        "checkpoints.sqlite3, else json); sqlite also keeps a per-page ledger",
    )
    parser.add_argument(
        "--worker-id",
        type=_worker_id,
        help="this process's name in the sqlite ledger (default: HOST-PID)",
    )
    shared = parser.add_argument_group("shared stage (PostgreSQL)")
    shared.add_argument(
        "--workers",
        type=int,
        help="share the stage with N local worker processes through PostgreSQL (0: only "
        "workers joined from other machines)",
    )
    shared.add_argument("--dsn", help=f"PostgreSQL connection string (default ${DSN_ENV})")
    shared.add_argument("--lease-seconds", type=float, default=30.0, help="default 30")
    shared.add_argument("--max-attempts", type=int, default=3, help="default 3")
    shared.add_argument("--batch-size", type=int, help="items per claim (default: concurrency)")
    parser.add_argument("--force", action="store_true", help="resume over a changed input")
    parser.add_argument("--fresh", action="store_true", help="forget progress, start over")
    parser.add_argument("--verbose", action="store_true")
    return parser


@dataclass(frozen=True, slots=True)
class Job:
    """What to enrich and where, resolved from the command line."""

    stage: str
    source: JsonlUrls
    """The input's URLs, streamed (scanned already: a bad record was refused)."""
    input_file: Path
    output_file: Path
    checkpoint_dir: Path
    config: EnrichmentConfig


def prepare(args: argparse.Namespace) -> Job | int:
    """Resolve the paths, check the input and build the config; an exit code on a bad input.

    A malformed record raises ``ValueError`` naming the file and line (``main`` prints it).
    """
    data_dir: Path = args.data_dir
    input_file = args.input or data_dir / "processed/stage02/validation_output.jsonl"
    output_file = args.output or data_dir / "processed/stage03/enrichment_output.jsonl"
    checkpoint_dir = args.checkpoint_dir or data_dir / "checkpoints"
    stage = STAGE_NAME
    same_page = page_key_function(args.directory_index)
    source = JsonlUrls.valid_pages(input_file, same_page=same_page)
    if args.retry_failed:
        input_file = failed_sidecar_path(output_file)
        output_file = output_file.with_name(output_file.stem + ".retry.jsonl")
        stage = STAGE_NAME + "_retry"
        source = JsonlUrls.failed_items(input_file, same_page=same_page)
    if input_file.is_dir():
        print(f"error: input {input_file} is a directory, not a JSON Lines file", file=sys.stderr)
        return 1
    if not input_file.is_file():
        hint = "nothing failed yet" if args.retry_failed else "run validation first"
        print(f"error: input {input_file} does not exist ({hint})", file=sys.stderr)
        return 1
    # Checked before anything is written: a bad output would otherwise fail only after the
    # checkpoint directory and the stage's lock file were made.
    for what, path in (
        ("output", output_file),
        ("failed sidecar", failed_sidecar_path(output_file)),
    ):
        problem = _output_problem(path)
        if problem is not None:
            print(f"error: {what} {path} {problem} (nothing was written)", file=sys.stderr)
            return 1
    try:
        # Streamed, not loaded: read twice here (repeats, count, hosts), once more to fetch.
        scanned = source.scan()
    except OSError as exc:
        print(f"error: cannot read {input_file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    domains = tuple(args.allowed_domain) or tuple(sorted(scanned.hosts))
    config = EnrichmentConfig(
        concurrency=args.concurrency,
        per_host_concurrency=args.per_host,
        per_host_delay=args.delay,
        allowed_domains=domains,
        block_private_addresses=args.block_private_addresses,
        allowed_networks=tuple(args.allow_network),
        user_agent=args.user_agent,
        directory_index=args.directory_index,
    )
    return Job(stage, source, input_file, output_file, checkpoint_dir, config)


def _output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as a JSON Lines file, or None (missing directories are
    created)."""
    if path.is_dir():
        return "is a directory, not a JSON Lines file"
    problem = directory_problem(path.parent, create=True)
    return None if problem is None else f"cannot be created: {problem}"


def run_stage(args: argparse.Namespace, job: Job) -> int:
    """Run the stage (in this process, or shared through PostgreSQL with ``--workers``), print
    its summary and return the exit code."""
    store = select_store(
        args.store,
        job.checkpoint_dir,
        fresh=args.fresh,
        restarting=[job.stage],
        start_over_all="give this stage a --checkpoint-dir of its own",
        outputs=[job.output_file],
    )
    summary: EnrichmentSummary | DistributedSummary
    if args.workers is None:
        summary = asyncio.run(run(args, job, store))
    else:
        summary = run_shared(args, job, store)
    progress = summary.progress
    if progress is not None:
        lines = summary_lines(
            job.stage,
            summary.status,
            written=progress.successful,
            failed=progress.failed,
            skipped=progress.skipped,
            total=progress.total,
            output_file=job.output_file,
            stopped_by_signal=summary.stopped_by_signal,
            already_completed=summary.already_completed,
            fresh=args.fresh,
            left_out=summary.input_left_out if isinstance(summary, EnrichmentSummary) else 0,
            repeats=summary.input_repeats if isinstance(summary, EnrichmentSummary) else 0,
        )
        for line in lines:
            print(line, flush=True)
    elif summary.already_completed:  # a shared stage: its counts are in the queue, not here
        print(f"{job.stage}: nothing to do, already completed", flush=True)
    return _exit_code(summary.status, summary.stopped_by_signal)


async def run(args: argparse.Namespace, job: Job, store: StoreChoice) -> EnrichmentSummary:
    """The stage in this one process."""
    processor = AsyncEnrichmentProcessor(
        job.output_file,
        checkpoint_dir=job.checkpoint_dir,
        config=job.config,
        stage=job.stage,
        force=args.force,
        fresh=args.fresh,
        handle_signals=True,
        store=store.kind,
        worker_id=args.worker_id,
        store_switch=store.switch,  # made by the stage's start, once it goes ahead
    )
    async with processor:
        return await processor.process_urls(job.source, input_file=job.input_file)


def run_shared(args: argparse.Namespace, job: Job, store: StoreChoice) -> DistributedSummary:
    """The stage shared by worker processes through PostgreSQL (a supervisor: no event loop)."""
    # Here, not at the top: it loads psycopg, which a run without --workers never needs.
    from enrich.distributed import DistributedOptions, run_distributed

    options = DistributedOptions(
        dsn=args.dsn,
        workers=args.workers,
        lease_seconds=args.lease_seconds,
        max_attempts=args.max_attempts,
        batch_size=args.batch_size,
        per_host_delay=args.delay,
    )
    return run_distributed(
        list(job.source),  # loaded once into the database
        options=options,
        output_file=job.output_file,
        checkpoint_dir=job.checkpoint_dir,
        config=job.config,
        input_file=job.input_file,
        stage=job.stage,
        force=args.force,
        fresh=args.fresh,
        store=store.kind,
        store_switch=store.switch,
    )


def summary_lines(
    stage: str,
    status: str,
    *,
    written: int,
    failed: int,
    skipped: int,
    total: int,
    output_file: Path,
    stopped_by_signal: str | None = None,
    already_completed: bool = False,
    fresh: bool = False,
    left_out: int = 0,
    repeats: int = 0,
) -> list[str]:
    """The lines ``python -m enrich`` ends with: one that says what happened, then the paths.

    ``written``/``failed``/``skipped`` count the whole stage (earlier runs included), so they
    match the files: ``failed`` is the line count of ``<output>.failed.jsonl``. ``left_out``
    and ``repeats``: the input's records that were no page to fetch, and its aliases of pages
    listed before (a line of their own when there are any).
    """
    counts = f"{written:,} written, {failed:,} failed, {skipped:,} skipped (not HTML)"
    done = written + failed + skipped
    if already_completed:
        head = f"{stage}: nothing to do, already completed ({counts})"
    elif stopped_by_signal is not None:
        head = (
            f"{stage} paused by {stopped_by_signal} at {done:,} of {total:,} pages ({counts}); "
            f"run {'the same command without --fresh' if fresh else 'the same command'} to resume"
        )
    elif status == "completed":
        head = f"{stage} completed, {done:,} pages: {counts}"
    else:
        head = f"{stage} {status} at {done:,} of {total:,} pages ({counts})"
    lines = [head]
    if left_out or repeats:
        reasons = not_fetched_reasons(left_out, repeats, unit="input record", after="listed before")
        lines.append(f"  not fetched: {reasons}")
    lines.append(f"  records: {output_file}")
    if failed:
        lines.append(f"  failed:  {failed_sidecar_path(output_file)} (retry: --retry-failed)")
    return lines


def _exit_code(status: str, stopped_by_signal: str | None) -> int:
    if stopped_by_signal == "SIGINT":
        return 130
    if stopped_by_signal == "SIGTERM":
        return 143
    return 0 if status == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers is not None:
        if args.retry_failed:
            parser.error("--workers does not combine with --retry-failed")
        args.dsn = resolve_dsn(args.dsn)
        if args.dsn is None:
            parser.error(f"--workers needs a database: give --dsn or set {DSN_ENV}")
        if args.workers < 0:
            parser.error(f"--workers must be >= 0, got {args.workers}")
        if not args.lease_seconds > 0:
            parser.error(f"--lease-seconds must be > 0, got {args.lease_seconds}")
        if args.max_attempts < 1:
            parser.error(f"--max-attempts must be >= 1, got {args.max_attempts}")
        if args.batch_size is not None and args.batch_size < 1:
            parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        job = prepare(args)
        if isinstance(job, int):
            return job
        return run_stage(args, job)
    except KeyboardInterrupt:
        return 130
    except (CheckpointError, OSError, ValueError, BaseExceptionGroup) as exc:
        problems = _leaves(exc)
        if not problems:
            raise
        for message in dict.fromkeys(problems):  # one line per distinct problem
            print(f"error: {message}", file=sys.stderr)
        return 1


def _leaves(exc: BaseException) -> list[str] | None:
    """One message per error a user can act on (disk, checkpoint, bad input); None for bugs.

    Errors of concurrent workers arrive grouped; a group holding anything else is a bug and
    keeps its traceback.
    """
    if isinstance(exc, BaseExceptionGroup):
        messages: list[str] = []
        for inner in exc.exceptions:
            found = _leaves(inner)
            if found is None:
                return None
            messages += found
        return messages
    if isinstance(exc, InputChangedError | ConfigChangedError):
        # The engine's advice, in this command's words.
        return [" ".join(str(exc).split()) + " (rerun with --force to resume anyway, or --fresh)"]
    if isinstance(exc, CheckpointError | ValueError):
        return [" ".join(str(exc).split())]
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return [f"{where}{exc.strerror or exc}"]
    return None


if __name__ == "__main__":
    raise SystemExit(main())
