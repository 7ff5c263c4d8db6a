"""The demo site in a subprocess: ``start_demo_site_process`` / ``stop_demo_site_process``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from tools.demo_site.model import DEFAULT_SLOW_MS

__all__ = ["DemoSiteStartError", "start_demo_site_process", "stop_demo_site_process"]


class DemoSiteStartError(RuntimeError):
    """The demo site subprocess did not print its base URL in time (or exited first)."""


_PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]


def start_demo_site_process(
    pages: int,
    seed: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    slow_ms: float = DEFAULT_SLOW_MS,
    robots_ms: float = 0,
    profile: str = "university",
    timeout: float = 30.0,
    python: str | None = None,
    stderr: int | TextIO | None = None,
    popen_options: Mapping[str, Any] | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], str]:
    """Launch ``python -m tools.demo_site`` and return the process and its base URL.

    Waits up to ``timeout`` seconds for the URL line; on failure the process is killed and
    ``DemoSiteStartError`` says why.  Stop it with ``stop_demo_site_process`` (or SIGTERM).
    ``stderr`` is passed to ``subprocess.Popen`` (default: inherited), and so are
    ``popen_options`` (the orchestrator makes the site die with it this way). ``profile`` picks
    the site (``university`` or ``dense``, see ``build_site``). ``extra_args``
    are more command-line options, such as ``("--transient-share", "0.05")``.
    """
    command = [
        python or sys.executable,
        "-m",
        "tools.demo_site",
        "--host",
        host,
        "--port",
        str(port),
        "--pages",
        str(pages),
        "--seed",
        str(seed),
        "--latency-ms",
        str(latency_ms),
        "--slow-ms",
        str(slow_ms),
        "--robots-ms",
        str(robots_ms),
        "--profile",
        profile,
        *extra_args,
    ]
    env = dict(os.environ)
    # Importable as ``tools.demo_site`` from any working directory, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, **(popen_options or {})
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = lines[0].strip() if lines else ""
    if line.startswith("http://"):
        return process, line
    process.kill()
    process.wait()
    if reader.is_alive():
        reason = f"no URL line within {timeout:g} s"
    else:
        reason = f"it exited with code {process.returncode} and printed {line!r}"
    raise DemoSiteStartError(f"demo site did not start ({reason}): {' '.join(command)}")


def stop_demo_site_process(process: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """SIGTERM the demo site process, wait (killing it after ``timeout``); return its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode
