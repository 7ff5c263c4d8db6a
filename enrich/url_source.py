"""The enrichment stage's input, streamed: each page once, in file order, never all in memory.

"Each page once": URLs are compared by a key (``same_page``, :func:`enrich.same_page.page_key`
in the stage), so ``/docs/#intro`` and ``/docs/index.html`` after ``/docs/`` are repeats; the
first spelling is kept, without its fragment. Without a key, URLs are compared as they are.

A stage 2 output of a million pages is a million URL strings: held in a list (and a dict to
drop repeats) they cost a few hundred bytes each, so the stage's memory would grow with its
input. :class:`JsonlUrls` reads the file instead, as often as needed:

1. the first read keeps an 8-byte hash per URL in an open-addressing table (16 bytes a URL at
   most); hashes seen twice are the only candidates for repeats;
2. every read after it keeps as strings only the URLs whose hash is a candidate (the repeated
   ones, plus the rare collision), so dropping repeats is exact.

:meth:`~UrlSource.scan` makes both reads and returns what the stage needs before it starts
(the stage then reads once more as it works): how many unique URLs there are,
a digest of them in order (the resume guard: indices are positions in this sequence), and their
hosts (the default allowed domains). A line that is not a record is a ``ValueError`` naming the
file and the line, raised by the scan, before anything is fetched or written.

:class:`UrlList` gives an in-memory sequence the same interface. Both read in the calling
thread: async callers run them in a worker thread.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from common.records import iter_numbered_records
from enrich.fetch import HTML_CONTENT_TYPES
from enrich.same_page import without_fragment

__all__ = [
    "JsonlUrls",
    "SourceSummary",
    "UrlList",
    "UrlSource",
    "failed_item_url",
    "sequence_digest",
    "valid_page_url",
]

_EMPTY: Final = 0
_INITIAL_SLOTS: Final = 1 << 12


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What a scan found: the unique URLs' count, their ordered digest, their hosts."""

    count: int
    digest: str
    """SHA-256 of the unique URLs joined by newlines, in order."""
    hosts: frozenset[str]
    left_out: int = 0
    """Records of the file that lead to no page (stage 2's HTTP errors, non-HTML answers)."""
    repeats: int = 0
    """URLs left out as another address of a page listed before (a fragment, ``index.html``)."""


class UrlSource(ABC):
    """Unique URLs, in a fixed order, that can be read more than once."""

    @abstractmethod
    def scan(self) -> SourceSummary:
        """Read everything (blocking) and summarize it; ``ValueError`` on a bad record."""

    @abstractmethod
    def __iter__(self) -> Iterator[str]:
        """The unique URLs in order (blocking reads)."""

    def batches(self, size: int = 512) -> Generator[list[str], None, None]:
        """The unique URLs in lists of up to ``size``: one worker-thread call per list."""
        batch: list[str] = []
        for url in self:
            batch.append(url)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def sequence_digest(urls: Iterable[str]) -> str:
    """SHA-256 of ``urls`` joined by newlines, computed without joining them."""
    return _summarize(urls, hosts=False).digest


def _summarize(urls: Iterable[str], *, hosts: bool = True) -> SourceSummary:
    digest = hashlib.sha256()
    found: set[str] = set()
    count = 0
    for url in urls:
        digest.update(("\n" + url if count else url).encode())
        count += 1
        if hosts and (host := urlsplit(url).hostname):
            found.add(host)
    return SourceSummary(count, digest.hexdigest(), frozenset(found))


class UrlList(UrlSource):
    """An in-memory sequence of URLs, first occurrence of each page kept (see the module)."""

    def __init__(
        self, urls: Iterable[str], *, same_page: Callable[[str], str] | None = None
    ) -> None:
        given = list(urls)
        if same_page is None:
            self._urls = list(dict.fromkeys(given))
        else:
            first: dict[str, str] = {}
            for url in given:
                first.setdefault(same_page(url), without_fragment(url))
            self._urls = list(first.values())
        self._repeats = len(given) - len(self._urls)

    def scan(self) -> SourceSummary:
        return replace(_summarize(self._urls), repeats=self._repeats)

    def __iter__(self) -> Iterator[str]:
        return iter(self._urls)

    def __len__(self) -> int:
        return len(self._urls)


def valid_page_url(record: dict[str, Any]) -> str | None:
    """The page a stage 2 record leads to when it is valid HTML (after redirects), else None."""
    content_type = record.get("content_type") or ""
    if not isinstance(content_type, str):
        raise TypeError(f"'content_type' is {type(content_type).__name__}, not a string")
    if not (record.get("ok") and content_type.split(";")[0].strip().lower() in HTML_CONTENT_TYPES):
        return None
    # A redirect is not a page of its own: enrich where it leads, once.
    final = record.get("final_url") or record["url"]
    if not isinstance(final, str):
        raise TypeError(f"'final_url' is {type(final).__name__}, not a string")
    return final


def failed_item_url(record: dict[str, Any]) -> str:
    """The URL of a ``.failed.jsonl`` record."""
    url: str = record["url"]
    return url


class JsonlUrls(UrlSource):
    """The URLs selected from a JSON Lines file, streamed; see the module docstring.

    Args:
        path: the file.
        select: a record's URL, or None to leave the record out; raising ``TypeError`` or
            ``ValueError`` marks the record bad.
        kind: what a record is called in errors ("validation", "failed-item").
        same_page: the key two URLs of one page share (None: the URL itself).
    """

    def __init__(
        self,
        path: Path | str,
        select: Callable[[dict[str, Any]], str | None],
        *,
        kind: str,
        same_page: Callable[[str], str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._select = select
        self._kind = kind
        self._key = same_page
        self._repeated: set[int] | None = None
        self._summary: SourceSummary | None = None
        # The last full read's counts: records read, and URLs selected from them.
        self._read = self._selected_count = 0

    @classmethod
    def valid_pages(
        cls, path: Path | str, *, same_page: Callable[[str], str] | None = None
    ) -> JsonlUrls:
        """Stage 2's valid HTML pages (final URLs after redirects)."""
        return cls(path, valid_page_url, kind="validation", same_page=same_page)

    @classmethod
    def failed_items(
        cls, path: Path | str, *, same_page: Callable[[str], str] | None = None
    ) -> JsonlUrls:
        """The URLs of a ``.failed.jsonl`` sidecar (for a retry run)."""
        return cls(path, failed_item_url, kind="failed-item", same_page=same_page)

    def _selected(self) -> Iterator[str]:
        read = selected = 0
        for number, record in iter_numbered_records(self.path, kind=self._kind):
            read += 1
            try:
                url = self._select(record)
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(
                    f"{self.path}:{number}: not a {self._kind} record ({exc})"
                ) from None
            if url is not None:
                selected += 1
                yield url if self._key is None else without_fragment(url)
        self._read, self._selected_count = read, selected

    def scan(self) -> SourceSummary:
        """Read the file twice: find repeated hashes, then count and digest the unique URLs.

        The summary is kept: later calls return it without reading again.
        """
        if self._summary is None:
            summary = _summarize(self)  # its read counts what the records led to
            self._summary = replace(
                summary,
                left_out=self._read - self._selected_count,
                repeats=self._selected_count - summary.count,
            )
        return self._summary

    def _repeated_hashes(self) -> set[int]:
        if self._repeated is None:
            table = _HashTable()
            key = self._key
            for url in self._selected():
                table.add(_hash(url if key is None else key(url)))
            self._repeated = table.repeated
        return self._repeated

    def __iter__(self) -> Iterator[str]:
        repeated = self._repeated_hashes()
        key = self._key
        seen: set[str] = set()
        for url in self._selected():
            page = url if key is None else key(url)
            if repeated and _hash(page) in repeated:
                if page in seen:
                    continue
                seen.add(page)
            yield url


def _hash(url: str) -> int:
    # Never 0: that marks an empty slot.
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "little") or 1


class _HashTable:
    """A set of 64-bit hashes in one flat array (linear probing); remembers those added twice."""

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * _INITIAL_SLOTS))
        self._mask = _INITIAL_SLOTS - 1
        self._used = 0
        self.repeated: set[int] = set()

    def add(self, value: int) -> None:
        slots, mask = self._slots, self._mask
        i = value & mask
        while True:
            current = slots[i]
            if current == _EMPTY:
                break
            if current == value:
                self.repeated.add(value)
                return
            i = (i + 1) & mask
        slots[i] = value
        self._used += 1
        if self._used * 2 > len(slots):
            self._grow()

    def _grow(self) -> None:
        old = self._slots
        size = len(old) * 2
        slots = array("Q", bytes(8 * size))
        mask = size - 1
        for value in old:
            if value != _EMPTY:
                i = value & mask
                while slots[i] != _EMPTY:
                    i = (i + 1) & mask
                slots[i] = value
        self._slots, self._mask = slots, mask
