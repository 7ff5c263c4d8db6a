"""Inspect and manage the checkpoints of a pipeline (seed 003's checkpoint manager CLI).

Usage::

    python tools/checkpoint_manager_cli.py [--checkpoint-dir DIR] [--store json|sqlite]
                                           [--verbose] COMMAND ...
    python -m tools.checkpoint_cli ...          # or the installed ``checkpoint-manager``

The parser and the exit codes live here; each command in :mod:`.commands`, rendering in
:mod:`.render`, what commands share in :mod:`.base`.

Commands:

    list [--json]                     every stage: status, progress n/N (x%), success rate, updated
    show STAGE [--json]               one stage in detail: status and timestamps, progress,
                                      performance, resume point, errors, input file validation
    report [--json] [--html FILE]     seed 003's "Pipeline Progress Report"; --html writes a
                                      self-contained page with progress bars and history charts
    export --output FILE              every stage as one JSON document
    reset STAGE|all [--force] [--dry-run]
                                      forget a stage's progress (asks on a terminal; refuses
                                      without --force when there is none)
    cleanup --days N [--keep K] [--force] [--dry-run]
                                      remove what is older than N days: history snapshots, and
                                      with --keep 0 completed checkpoints (each stage keeps its
                                      K newest versions, the current checkpoint first); asks
                                      like reset
    set STAGE INDEX [--part P]        move the resume point by hand (0..total; recorded in the
                                      history; a completed stage becomes paused)
    history STAGE                     the stage's timestamped snapshots
    restore STAGE SNAPSHOT            make a snapshot the current checkpoint again (through
                                      UnifiedCheckpointManager.restore: refused when the
                                      outputs it counts are gone)
    watch [--interval S] [--once]     a live, refreshing table until Ctrl-C
    results [--json] [--data-dir DIR] [--stage S] [--top N] [--samples N]
                                      what the stage outputs hold: pages per status, top failure
                                      reasons, hosts, sample records
    export-data [--output-dir DIR] [--format csv|parquet] [--data-dir DIR] [--stage S]
                                      the stage outputs (and failed sidecars) as CSV and Parquet
    serve [--host H] [--port P] [--interval S]
                                      a live dashboard in the browser (aiohttp, read-only,
                                      127.0.0.1 unless told otherwise): every stage's progress,
                                      throughput over time and ETA
    ledger STAGE [--json] [--limit N] [--include-failed]
                                      the per-item ledger (SQLite store): remaining work and
                                      statistics per status, worker, attempts and error

``--checkpoint-dir`` (default ``data/checkpoints``) and ``--store`` (default: ``sqlite`` when
the directory holds ``checkpoints.sqlite3``, else ``json``) may come before or after the command.
STAGE is a stage name or the pipeline's short name for it (``discovery``, ``validation``,
``enrichment``; see :func:`.base.require_stage`).
Reading commands (list, show, report, export, history, watch) never take a stage's lock and never
write a checkpoint. Writing commands (reset, cleanup, set, restore) hold the writer lock of
every stage they change (cleanup: every stage it removes a snapshot or checkpoint of; the
``--dry-run`` of reset and cleanup says when the real run would be refused): a stage a live process writes is refused,
``error: stage NAME is running (pid N); stop it first (nothing was changed)``, exit 1, even
with ``--force``. Output files (``export --output``, ``report --html``) are refused, naming
the path given, when they are a directory or their directory does not exist; they and
``export-data``'s files are refused, naming the file and the stage, when a stage of the
directory keeps them (its output or failed sidecar, one its history names, a checkpoint file:
:func:`common.outputs.refuse_replacing`), nothing written. Tables use rich on a terminal and plain aligned text otherwise.

Exit codes:

    0   success (also: an empty or missing checkpoint directory, Ctrl-C in ``watch``)
    1   error: one line on stderr starting with ``error:`` naming the stage or file
    2   usage error (bad arguments, a STAGE that is not a valid name or that the directory
        has no checkpoint for)
    130 interrupted by Ctrl-C
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

if not __package__:  # run by path: make ``common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from common.argtypes import (
    non_negative_float,
    non_negative_int,
    port_number,
    positive_float,
    positive_int,
)
from common.errors import CheckpointError
from common.stores.factory import store_argument
from tools.checkpoint_cli.base import (
    DEFAULT_DIR,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    CliUsageError,
    configure_logging,
    error_line,
    os_error_line,
)
from tools.checkpoint_cli.commands.changes import cmd_cleanup, cmd_reset, cmd_set, storable_index
from tools.checkpoint_cli.commands.export_data import FORMATS, cmd_export_data
from tools.checkpoint_cli.commands.history import cmd_history, cmd_restore
from tools.checkpoint_cli.commands.ledger import cmd_ledger
from tools.checkpoint_cli.commands.listing import cmd_list
from tools.checkpoint_cli.commands.report import cmd_export, cmd_report
from tools.checkpoint_cli.commands.results import cmd_results
from tools.checkpoint_cli.commands.serve import cmd_serve
from tools.checkpoint_cli.commands.show import cmd_show
from tools.checkpoint_cli.commands.watch import cmd_watch

__all__ = ["build_parser", "main"]

EPILOG = """\
exit codes:
  0    success (an empty or missing checkpoint directory is not an error)
  1    error: one line on stderr starting with 'error:' naming the stage or file
  2    usage error (also: a STAGE that is no valid name or has no checkpoint here)
  130  interrupted (Ctrl-C, also at a confirmation prompt), except in 'watch': 0

Writing commands (reset, cleanup, set, restore) refuse a stage a live process writes, with
or without --force: "error: stage NAME is running (pid N); stop it first (nothing was
changed)", exit 1.

STAGE is a stage name (stage1_discovery, ...) or the pipeline's short name for it
(discovery, validation, enrichment). --checkpoint-dir and --store may be given before or
after the command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (global options are accepted before or after the command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"directory holding <stage>.json checkpoints (default: {DEFAULT_DIR})",
    )
    common.add_argument(
        "--store",
        type=store_argument,
        metavar="STORE",
        default=argparse.SUPPRESS,
        help="checkpoint store (default: sqlite if the directory holds checkpoints.sqlite3, "
        "else json)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also log the engine's INFO messages",
    )
    parser = argparse.ArgumentParser(
        description="Inspect and manage the checkpoints of a staged crawl pipeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> Any:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = add("list", cmd_list, "list every stage's checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON only")

    p = add("show", cmd_show, "show one stage in detail (and re-hash its input file)")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true", help="print JSON only")

    p = add("report", cmd_report, 'print the "Pipeline Progress Report"')
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument(
        "--html", metavar="FILE", help="write a self-contained HTML report with charts to FILE"
    )

    p = add("export", cmd_export, "write every stage as one JSON document")
    p.add_argument("--output", "-o", metavar="FILE", required=True)

    p = add("reset", cmd_reset, "reset a stage, or all stages, to nothing done")
    p.add_argument("stage", metavar="STAGE|all")
    p.add_argument(
        "--force",
        action="store_true",
        help="do not ask (needed without a terminal); a stage a live process writes is "
        "refused all the same",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be reset; change nothing"
    )

    p = add(
        "cleanup",
        cmd_cleanup,
        "remove old history snapshots (and, with --keep 0, old completed checkpoints)",
    )
    p.add_argument(
        "--days",
        type=non_negative_float,
        required=True,
        metavar="N",
        help="remove only what is older than N days (0: everything not kept by --keep)",
    )
    p.add_argument(
        "--keep",
        type=non_negative_int,
        default=1,
        metavar="K",
        help="versions of each stage kept whatever their age, its current checkpoint counting as "
        "the newest (default: 1, the current checkpoint; 0 lets an old completed one go too)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be removed; change nothing"
    )
    p.add_argument("--force", action="store_true", help="do not ask (needed without a terminal)")

    p = add("set", cmd_set, "move a stage's resume point by hand")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument(
        "index",
        type=storable_index,
        metavar="INDEX",
        help="first index to redo (0 to the stage's total); a completed stage becomes paused",
    )
    p.add_argument("--part", metavar="NAME", help="move the position within one part (split)")

    p = add("history", cmd_history, "list a stage's history snapshots")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true", help="print JSON only")

    p = add("restore", cmd_restore, "make a history snapshot the current checkpoint")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("snapshot", metavar="SNAPSHOT")

    p = add(
        "results",
        cmd_results,
        "what was crawled: pages per status, top failure reasons, hosts, sample records",
    )
    _data_options(p)
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument(
        "--top", type=positive_int, default=10, metavar="N", help="reasons and hosts (default: 10)"
    )
    p.add_argument(
        "--samples",
        type=non_negative_int,
        default=3,
        metavar="N",
        help="sample records (default: 3)",
    )

    p = add("export-data", cmd_export_data, "write the stage outputs to CSV and Parquet files")
    _data_options(p)
    p.add_argument(
        "--output-dir", metavar="DIR", help="where the files go (default: DATA_DIR/exports)"
    )
    p.add_argument(
        "--format",
        action="append",
        choices=FORMATS,
        help="csv or parquet; repeat for both (default: both)",
    )

    p = add(
        "serve",
        cmd_serve,
        "a live dashboard in the browser: progress, throughput over time, ETA (read-only)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; anything else is reachable by others)",
    )
    p.add_argument(
        "--port",
        type=port_number,
        default=0,
        metavar="PORT",
        help="port to listen on (default: 0, any free port; the URL is printed)",
    )
    p.add_argument(
        "--interval",
        type=positive_float,
        default=2.0,
        metavar="S",
        help="seconds between refreshes and chart points (default: 2)",
    )

    p = add("watch", cmd_watch, "a live table of every stage, refreshed until Ctrl-C")
    p.add_argument(
        "--interval", type=positive_float, default=2.0, metavar="S", help="seconds (default: 2)"
    )
    p.add_argument("--once", action="store_true", help="render once and exit")

    p = add("ledger", cmd_ledger, "the per-item ledger: remaining work and statistics (sqlite)")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument(
        "--limit",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="remaining items listed (default: 20)",
    )
    p.add_argument(
        "--include-failed", action="store_true", help="count failed items as remaining work"
    )
    return parser


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the pipeline's data directory (default: the checkpoint directory's parent)",
    )
    p.add_argument(
        "--stage",
        action="append",
        metavar="STAGE",
        help="only this stage (repeatable; default: every stage with an output)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # SUPPRESS defaults, filled in here, let the options come before or after the command.
    args.checkpoint_dir = getattr(args, "checkpoint_dir", DEFAULT_DIR)
    args.store = getattr(args, "store", None)
    args.verbose = getattr(args, "verbose", False)
    configure_logging(args.verbose)
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C (or kill -INT) ends a command with 130 even when it was started with SIGINT
        # ignored, as a shell's background job or a nohup'd script starts it: the orchestrator,
        # enrich and the Scrapy stages install their own handler too.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with contextlib.ExitStack() as args.cleanup:
            return func(args)
    except CliUsageError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    except CheckpointError as exc:
        print(error_line(exc), file=sys.stderr)
    except BrokenPipeError:
        # ``list | head``: the reader went away; say nothing more.
        with contextlib.suppress(OSError):
            sys.stdout = open(  # noqa: SIM115 - replaced for the interpreter's final flush
                "/dev/null", "w"
            )
        return EXIT_ERROR
    except OSError as exc:
        print(os_error_line(exc), file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
