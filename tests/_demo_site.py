"""The demo site in a process of its own for a test module's crawls, stopped when they are done."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tools.demo_site import start_demo_site_process, stop_demo_site_process

__all__ = ["serving_demo_site"]


@contextmanager
def serving_demo_site(pages: int, seed: int, *, profile: str = "university") -> Iterator[str]:
    """Serve ``build_site(pages, seed, profile=profile)`` for the block and yield its base URL
    (no trailing slash). Its access log is dropped; a site that cannot start fails the test
    with the child's reason (``DemoSiteStartError``)."""
    process, url = start_demo_site_process(pages, seed, profile=profile, stderr=subprocess.DEVNULL)
    try:
        yield url
    finally:
        stop_demo_site_process(process)
