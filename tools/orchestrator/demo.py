"""The local demo site the development environment crawls, on a port remembered per data dir.

``DATA_DIR/demo_site.json`` records one port per site (size and seed), so a resumed run talks to
the same URLs (and the resume guard sees the same start URL). Each site keeps its port: a run
with other ``--pages``/``--seed`` that is refused (the checkpoints are of another site) leaves the
first site's port alone, so its own command still resumes. Two sites never share a port, so
the resume guard always sees another site as a change. The format is
``{"sites": [{"port": P, "pages": N, "seed": S}, ...]}``; the older one-site record
``{"port": P, "pages": N, "seed": S}`` is read as a list of one.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from common.io.atomic import atomic_write_bytes
from common.io.process import child_popen_options
from tools.orchestrator.config import ConfigError

__all__ = ["DemoSiteHandle", "demo_url", "remembered_port", "start_demo_site"]


@dataclass
class DemoSiteHandle:
    """The running demo site process and its base URL."""

    process: subprocess.Popen[str]
    base_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sites(record_path: Path) -> list[dict[str, int]]:
    """The sites ``record_path`` remembers (none if it is missing or unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(record_path.read_text())
        entries = record.get("sites", [record]) if isinstance(record, dict) else []
        sites = []
        for entry in entries if isinstance(entries, list) else []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                site = {key: int(entry[key]) for key in ("port", "pages", "seed")}
                sites.append(site)
        return sites
    return []


def _port_of(sites: list[dict[str, int]], pages: int, seed: int) -> int | None:
    for site in sites:
        if (site["pages"], site["seed"]) == (pages, seed):
            return site["port"]
    return None


def remembered_port(data_dir: Path, pages: int, seed: int) -> int | None:
    """The demo site's port recorded for this data dir, if it was the same site."""
    return _port_of(_sites(data_dir / "demo_site.json"), pages, seed)


def demo_url(port: int) -> str:
    """The demo site's base URL on ``port`` (as ``python -m tools.demo_site`` prints it)."""
    return f"http://127.0.0.1:{port}"


def start_demo_site(data_dir: Path, pages: int, seed: int, log: TextIO) -> DemoSiteHandle:
    """Start the demo site on the port remembered for ``data_dir`` (a free one the first time)."""
    from tools.demo_site import DemoSiteStartError, start_demo_site_process

    record_path = data_dir / "demo_site.json"
    sites = _sites(record_path)
    port = _port_of(sites, pages, seed)
    if port is None:
        taken = {site["port"] for site in sites}
        port = _free_port()
        while port in taken:  # another site's port would look like the same start URL
            port = _free_port()
    try:
        process, base_url = start_demo_site_process(
            pages, seed, port=port, stderr=log, popen_options=child_popen_options()
        )
    except DemoSiteStartError as exc:
        raise ConfigError(
            f"the demo site could not start on port {port} (remembered in {record_path} so a "
            f"resumed crawl sees the same URLs); free the port, or delete {record_path} to "
            f"crawl again from scratch on a new port ({exc})"
        ) from None
    this = {"port": port, "pages": pages, "seed": seed}
    if this not in sites:
        others = [s for s in sites if (s["pages"], s["seed"]) != (pages, seed)]
        atomic_write_bytes(
            record_path,
            json.dumps({"sites": [*others, this]}).encode() + b"\n",
            temp_path=record_path.with_name(f".{record_path.name}.tmp"),
        )
    return DemoSiteHandle(process, base_url)
