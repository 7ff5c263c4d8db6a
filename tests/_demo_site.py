"""The demo site in a process of its own for a test module's crawls, stopped when they are done."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tools.demo_site import start_demo_site_process, stop_demo_site_process

__all__ = ["serving_demo_site"]


@contextmanager
def serving_demo_site(pages: int, seed: int, **options: Any) -> Iterator[str]:
    """Serve ``build_site(pages, seed, profile=...)`` for the block and yield its base URL
    (no trailing slash). ``options`` are ``start_demo_site_process``'s (``profile``, ``port``,
    ``latency_ms``, ``slow_ms``, ``timeout``...). Its access log is dropped; a site that cannot
    start fails the test with the child's reason (``DemoSiteStartError``)."""
    process, url = start_demo_site_process(pages, seed, stderr=subprocess.DEVNULL, **options)
    try:
        yield url
    finally:
        stop_demo_site_process(process)
