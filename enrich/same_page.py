"""When two addresses are one page: the key the enrichment stage writes one record per.

Stage 3 writes one record per page, not per spelling of its address. :func:`page_key` maps a URL
to a key that is equal for addresses that differ only in ways that do not change the page:

- the fragment (``#section``), which never reaches the server;
- what :func:`w3lib.url.canonicalize_url` normalises, as Scrapy's request fingerprint does:
  scheme and host case, percent-encoding, ``.``/``..`` segments, query argument order, an empty
  query;
- an explicit default port (``:80`` for http, ``:443`` for https);
- a directory index file name as the last path segment (``/docs/index.html`` is ``/docs/``),
  for the names in ``directory_index``. Most servers answer both with the same page, but it is
  the server's choice, so it is a setting: :data:`DEFAULT_DIRECTORY_INDEX` by default, empty to
  keep them apart (``python -m enrich --directory-index ''``).

Letter case in the path is kept: many servers tell ``/A`` from ``/a``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import canonicalize_url

__all__ = ["DEFAULT_DIRECTORY_INDEX", "page_key", "page_key_function", "without_fragment"]

#: The directory index names taken to mean their directory unless the user says otherwise.
DEFAULT_DIRECTORY_INDEX: Final = ("index.html", "index.htm")

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_MAX_PORT: Final = 65535
# A URL canonicalize_url leaves as it is, apart from the fragment and an empty path: lower-case
# http(s) scheme and host (an optional port), a path of characters it never re-quotes and no
# dot segments, no query. Most crawled URLs look like this; canonicalize_url costs ~30 us a URL,
# and the stage computes a key per input line on each of its three passes.
_PLAIN: Final = re.compile(
    r"(?P<head>https?://[a-z0-9.-]+(?::(?P<port>[0-9]{1,5}))?)"
    r"(?P<path>(?:/(?!\.\.?(?:[/#]|$))[A-Za-z0-9\-._~!$&'()*+,=:@]*)*)"
    r"(?:#.*)?",
    re.DOTALL,
)


def without_fragment(url: str) -> str:
    """``url`` without its ``#fragment`` (and without a bare ``#``), otherwise unchanged."""
    head, _, _ = url.partition("#")
    return head


def page_key(url: str, directory_index: Iterable[str] = DEFAULT_DIRECTORY_INDEX) -> str:
    """The key under which every address of ``url``'s page is equal (see the module docstring).

    A URL that cannot be parsed is its own key (without its fragment): the fetch reports it.
    """
    plain = _PLAIN.fullmatch(url)
    if plain is not None and int(plain.group("port") or 0) <= _MAX_PORT:
        return _plain_key(plain, directory_index)
    return _canonical_key(url, directory_index)


def _canonical_key(url: str, directory_index: Iterable[str]) -> str:
    try:
        key = canonicalize_url(url, keep_fragments=False)
        parts = urlsplit(key)
        port = parts.port
    except ValueError:
        return without_fragment(url)
    netloc = parts.netloc
    if port is not None and _DEFAULT_PORTS.get(parts.scheme) == port:
        netloc = netloc.rpartition(":")[0]
    path = parts.path
    directory, _, last = path.rpartition("/")
    if last and last in directory_index:
        path = directory + "/"
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def _plain_key(plain: re.Match[str], directory_index: Iterable[str]) -> str:
    head, port, path = plain.group("head", "port", "path")
    if port is not None and _DEFAULT_PORTS[head[: head.index(":")]] == int(port):
        head = head[: -len(port) - 1]
    directory, _, last = path.rpartition("/")
    if last and last in directory_index:
        path = directory + "/"
    return head + (path or "/")


def page_key_function(directory_index: Iterable[str]) -> Callable[[str], str]:
    """:func:`page_key` with ``directory_index`` fixed (a frozen set, for speed)."""
    names = frozenset(directory_index)

    def key(url: str) -> str:
        return page_key(url, names)

    return key
