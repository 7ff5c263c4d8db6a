"""A directory of files served on 127.0.0.1 by the standard library, in a child process.

    python -m tools.bench.static_server DIR [--backlog 128]    # prints its base URL, serves

Python's own ``http.server`` handler (``SimpleHTTPRequestHandler``: a directory's
``index.html``, a listing where there is none, 404s, MIME types from the file name) on a
``ThreadingHTTPServer``, as ``python -m http.server`` serves it, but with a listen backlog of
``--backlog`` connections. The stock server's is 5 (``socketserver``'s default): it answers
HTTP/1.0, one connection per request, so a crawler with 8 requests in flight overflows it and
the kernel drops the SYNs, which the client resends after 1 s. Every fetch then seems to take a
second, and a stage's pages per second measure the kernel's retransmission timer, not the
crawler. ``--backlog 5`` is the stock server, to see that.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common.argtypes import positive_int

__all__ = ["main", "start_static_server", "stop_static_server"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per request on stderr would be thousands: none."""


def start_static_server(root: Path, backlog: int = 128) -> tuple[subprocess.Popen[bytes], str]:
    """Serve ``root`` from a child process; its handle and base URL (ending in ``/``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.bench.static_server", str(root), "--backlog", str(backlog)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        process.kill()
        process.wait()
        raise RuntimeError(f"the static server did not start: {line!r}")
    return process, line


def stop_static_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the child and reap it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.static_server")
    parser.add_argument("root", type=Path)
    parser.add_argument("--backlog", type=positive_int, default=128)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root} is not a directory", file=sys.stderr)
        return 1

    class Server(ThreadingHTTPServer):
        request_queue_size = args.backlog
        daemon_threads = True

    handler = partial(_QuietHandler, directory=str(args.root))
    with Server(("127.0.0.1", 0), handler) as server:
        print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
