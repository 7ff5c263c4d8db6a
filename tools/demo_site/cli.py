"""``python -m tools.demo_site``: build a site, print its base URL, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from common.argtypes import fraction, non_negative_float, port_number, positive_int
from tools.demo_site.builder import PROFILES, build_site
from tools.demo_site.model import DEFAULT_SLOW_MS, DEFAULT_TRANSIENT_SHARE
from tools.demo_site.server import serve_site

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo_site",
        description="Serve a deterministic university demo site; prints its base URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=0, help="port, 0 for a free one (default)"
    )
    parser.add_argument("--pages", type=positive_int, default=100, help="public HTML pages")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="university",
        help="university (default); dense: a link-dense documentation site, hundreds of links"
        " a page; simple: five links a page",
    )
    parser.add_argument(
        "--latency-ms", type=non_negative_float, default=0.0, help="delay added to every response"
    )
    parser.add_argument(
        "--slow-ms",
        type=non_negative_float,
        default=float(DEFAULT_SLOW_MS),
        help=f"extra delay of slow pages (default {DEFAULT_SLOW_MS})",
    )
    parser.add_argument(
        "--robots-ms",
        type=non_negative_float,
        default=0.0,
        help="extra delay of /robots.txt (a real site's round trip; default 0)",
    )
    parser.add_argument(
        "--transient-share",
        type=fraction(0.5),
        default=DEFAULT_TRANSIENT_SHARE,
        help=f"share of pages that fail before they succeed (default {DEFAULT_TRANSIENT_SHARE})",
    )
    parser.add_argument(
        "--transient-failures",
        type=positive_int,
        default=1,
        help="how many first requests of a transient page fail (default 1)",
    )
    parser.add_argument(
        "--transient-reset-share",
        type=fraction(1.0),
        default=0.0,
        help="share of the transient pages that drop the connection instead of answering 503",
    )
    return parser


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    site = build_site(
        args.pages,
        args.seed,
        transient_share=args.transient_share,
        transient_failures=args.transient_failures,
        transient_reset_share=args.transient_reset_share,
        profile=args.profile,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve_site(
        site,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        slow_ms=args.slow_ms,
        robots_ms=args.robots_ms,
    ) as base_url:
        print(base_url, flush=True)
        details = ", ".join(f"{key} {value}" for key, value in site.summary().items())
        print(f"demo site at {base_url}: seed {site.seed}, {details}", file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_serve_until_signalled(args))
    except OSError as exc:  # the port taken, an address not this machine's
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        print(f"error: cannot listen on {args.host} port {args.port}: {reason}", file=sys.stderr)
        return 1
    return 0
