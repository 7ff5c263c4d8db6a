"""``serve``: the live dashboard in a browser (read-only, on loopback unless told otherwise)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys

from aiohttp import web

from tools.checkpoint_cli.base import EXIT_OK, CliError, log, open_manager, out
from tools.checkpoint_cli.dashboard import Dashboard, make_app

__all__ = ["cmd_serve"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(dashboard: Dashboard, host: str, port: int) -> None:
    runner = web.AppRunner(make_app(dashboard), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        out(
            f"serving the dashboard of {dashboard.manager.checkpoint_dir} on "
            f"http://{shown}:{bound_port}/ (read-only; Ctrl-C to stop)"
        )
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: the dashboard until Ctrl-C or SIGTERM (exit 0)."""
    manager = open_manager(args)
    if not _is_loopback(args.host):
        log.warning(
            "serving on %s: anyone who can reach this address can read the checkpoints "
            "(read-only, no authentication)",
            args.host,
        )
    try:
        asyncio.run(_serve(Dashboard(manager, interval=args.interval), args.host, args.port))
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise CliError(f"cannot listen on {args.host} port {args.port}: {reason}") from None
    return EXIT_OK
