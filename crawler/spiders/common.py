"""Helpers shared by the crawl spiders."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from scrapy.http import Response

HTML_TYPES = ("text/html", "application/xhtml+xml")


def split_arg(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """A spider argument given as ``a,b`` (from ``-a``) or as a list (from code)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def refuse_unknown_arguments(
    spider: str, given: Mapping[str, object], known: Iterable[str]
) -> None:
    """Refuse a ``-a NAME=VALUE`` the spider does not take: Scrapy would set it as an attribute
    nobody reads (``-a allowed_domain=...`` crawled the start URLs' hosts, ``-a input=...``
    the default input). ``name`` is Scrapy's own; ``_job`` and other ``_`` names are a
    scheduler's (scrapyd), left alone."""
    known = list(known)
    for name in given:
        if name == "name" or name.startswith("_"):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(
            f"{spider} takes no argument {name!r}{hint}: its arguments are "
            f"{', '.join(f'-a {arg}=...' for arg in known)}"
        )


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return host


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL, with ``/`` as the path of a bare host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    if not parts.path:
        url = parts._replace(path="/").geturl()
    return url


def content_type(response: Response) -> str | None:
    raw = response.headers.get(b"Content-Type")
    if raw is None:
        return None
    return raw.decode("latin-1").split(";")[0].strip().lower() or None


def is_html(response: Response) -> bool:
    return content_type(response) in HTML_TYPES


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stage_path(data_dir: str | Path, stage_folder: str, name: str) -> str:
    return str(Path(data_dir) / "processed" / stage_folder / name)
