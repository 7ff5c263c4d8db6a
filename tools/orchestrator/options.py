"""The orchestrator's command line: every option, its default and its check (argparse types).

Every value is checked here or in :func:`tools.orchestrator.config.resolve_config` before the
data directory is touched; a bad one is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.argtypes import non_negative_float, non_negative_int, positive_float, positive_int
from common.stores.factory import store_argument
from common.work_queue.dsn import DSN_ENV
from enrich.addresses import add_allow_network_option
from tools.orchestrator.config import DEFAULT_USER_AGENT

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tools.orchestrator`` (and ``resumable-pipeline``)."""
    # Installed as the console script ``resumable-pipeline``; both names are the same command.
    installed = Path(sys.argv[0]).name == "resumable-pipeline"
    parser = argparse.ArgumentParser(
        prog="resumable-pipeline" if installed else "python -m tools.orchestrator",
        description="Run the crawl -> validate -> enrich pipeline; resumes where it stopped.",
        epilog="Exit codes: 0 done, 1 a stage failed or was refused, 2 usage, 130/143 "
        "interrupted. Crawling a site that is not yours: see the README, 'Crawling a real site'.",
    )
    parser.add_argument("--env", choices=("development", "production"), default="development")
    parser.add_argument(
        "--stage", default="all", help="all, discovery, validation, enrichment or a stage name"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument(
        "--start-url",
        action="append",
        default=[],
        help="repeatable; crawled politely unless on this machine",
    )
    parser.add_argument("--allowed-domain", action="append", default=[], help="repeatable")
    parser.add_argument("--config", type=Path, help="production TOML config")
    parser.add_argument(
        "--store",
        type=store_argument,
        metavar="STORE",
        help="checkpoint store (default: sqlite if DATA_DIR/checkpoints holds "
        "checkpoints.sqlite3, else json)",
    )
    parser.add_argument("--fresh", action="store_true", help="forget progress of the stages run")
    parser.add_argument("--force", action="store_true", help="resume over changed input/config")
    parser.add_argument(
        "--pages", type=positive_int, default=500, help="demo site size (development)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=2024, help="demo site seed (development)"
    )
    polite = parser.add_argument_group("politeness (see the README, 'Crawling a real site')")
    polite.add_argument(
        "--polite",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="AutoThrottle, 2 requests per domain, 1 s delay, robots.txt crawl-delay (default: "
        "on unless every start URL is on this machine)",
    )
    polite.add_argument(
        "--user-agent", help=f"who is crawling, with a contact (default {DEFAULT_USER_AGENT!r})"
    )
    polite.add_argument("--depth-limit", type=positive_int, help="links followed from a start URL")
    polite.add_argument(
        "--concurrency-per-domain", type=positive_int, help="requests in flight per domain"
    )
    polite.add_argument(
        "--download-delay", type=non_negative_float, help="seconds between requests to a domain"
    )
    polite.add_argument(
        "--max-pages", type=positive_int, help="stop discovery after N pages in this run"
    )
    polite.add_argument(
        "--max-time", type=positive_float, metavar="SECONDS", help="stop discovery after SECONDS"
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        help="share the enrichment stage with N worker processes through PostgreSQL",
    )
    parser.add_argument(
        "--dsn", help=f"PostgreSQL connection string for --workers (default ${DSN_ENV})"
    )
    parser.add_argument("--no-live", action="store_true", help="log lines instead of live bars")
    parser.add_argument(
        "--block-private-addresses",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse private, loopback and link-local addresses (SSRF guard; default: on with "
        "--env production, off in development)",
    )
    add_allow_network_option(parser)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="copy the stages' whole logs to the terminal (log lines instead of live bars)",
    )
    return parser
