"""Independent checks of a crawl of a static site whose files are on disk (``realdocs``).

Neither check shares code with the stage it checks: both read the files with BeautifulSoup's
``html.parser`` (the standard library's tokenizer, not lxml, which Scrapy's link extractor and
our extractor both use).

* :func:`walk_site`: every URL reachable from the start page through ``<a href>`` and
  ``<area href>`` (what discovery follows) on the same host, breadth-first, read from the files
  (``/`` and ``/dir/`` are ``index.html``). URLs are compared as discovery's dupefilter does
  (fragment dropped); ``/`` and ``/index.html`` stay two URLs, as discovery fetches both.
* :func:`compare_extraction`: stage 3's records against a BeautifulSoup reading of the same
  file: the title, ``h1``/``h2`` (permalink marks removed), the ``<a href>`` links that lead
  to an http(s) URL, and the words. BeautifulSoup's ``get_text`` has no notion of block
  elements: joined with ``""`` it glues ``"end.</p><p>Next"`` into one word, with ``" "`` it
  splits ``<code>os</code>.`` into two; a page's word count read as a reader sees it lies
  between the two, so a count outside that range is a disagreement.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urljoin, urlsplit

from bs4 import BeautifulSoup, Comment

from enrich.extract import extract_page

__all__ = ["ExtractionAgreement", "compare_extraction", "file_of", "walk_site"]

_WORD: Final = re.compile(r"[^\W_]")
_NOT_HTTP: Final = re.compile(r"(?i)^(mailto|javascript|tel|data|ftp|file):")
_HIDDEN: Final = ["script", "style", "head", "template", "noscript"]


def file_of(root: Path, url: str) -> Path:
    """The file a static server answers ``url`` with (a directory: its ``index.html``)."""
    path = unquote(urlsplit(url).path).lstrip("/")
    if path == "" or path.endswith("/"):
        path += "index.html"
    return root / path


def walk_site(root: Path, start_url: str) -> dict[str, int]:
    """URL -> depth for every URL reachable from ``start_url`` by ``<a>``/``<area>`` links on
    its host, found in the HTML files under ``root`` (a URL with no file is still reached)."""
    host = urlsplit(start_url).netloc
    depth = {start_url: 0}
    queue = deque([start_url])
    while queue:
        url = queue.popleft()
        path = file_of(root, url)
        if path.suffix != ".html" or not path.is_file():
            continue
        soup = BeautifulSoup(path.read_bytes(), "html.parser")
        for tag in soup.find_all(["a", "area"]):
            href = tag.get("href")
            if not isinstance(href, str):
                continue
            target = urljoin(url, href.strip()).partition("#")[0]
            parts = urlsplit(target)
            if parts.scheme in ("http", "https") and parts.netloc == host and target not in depth:
                depth[target] = depth[url] + 1
                queue.append(target)
    return depth


def _words(text: str) -> int:
    return sum(1 for token in text.split() if _WORD.search(token))


def _reading(body: bytes) -> dict[str, Any]:
    soup = BeautifulSoup(body, "html.parser")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text().split()) if title_tag else None
    for tag in soup(_HIDDEN):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for mark in soup.select("a.headerlink"):
        mark.decompose()
    headings = {
        name: [t for t in (" ".join(h.get_text("").split()) for h in soup.find_all(name)) if t]
        for name in ("h1", "h2")
    }
    links = 0
    for anchor in soup.find_all("a", href=True):
        href = str(anchor["href"]).strip()
        if href and not href.startswith("#") and not _NOT_HTTP.match(href):
            links += 1
    return {
        "title": title or None,
        **headings,
        "links": links,
        "words_joined": _words(soup.get_text("")),
        "words_spaced": _words(soup.get_text(" ")),
    }


@dataclass
class ExtractionAgreement:
    """How stage 3's records compare with the independent reading, page by page."""

    pages: int = 0
    record_differs: list[str] = field(default_factory=list)
    """Pages whose record is not what ``extract_page`` gives for the file (a fetch problem)."""
    disagreements: dict[str, list[str]] = field(default_factory=dict)
    """Field -> the pages where ours and BeautifulSoup's differ."""
    ours_seconds: float = 0.0
    """``extract_page`` over every page, one thread (stage 3's CPU floor)."""
    independent_seconds: float = 0.0

    def agreed(self, name: str) -> int:
        return self.pages - len(self.disagreements.get(name, []))


def compare_extraction(root: Path, records_file: Path) -> ExtractionAgreement:
    """Every stage 3 record of ``records_file`` against its file under ``root``."""
    result = ExtractionAgreement()
    with records_file.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    for record in records:
        body = file_of(root, record["final_url"]).read_bytes()
        started = time.perf_counter()
        ours = extract_page(record["final_url"], body, "text/html")
        result.ours_seconds += time.perf_counter() - started
        started = time.perf_counter()
        theirs = _reading(body)
        result.independent_seconds += time.perf_counter() - started
        result.pages += 1
        url = record["url"]
        if any(ours[k] != record[k] for k in ("title", "h1", "h2", "word_count", "link_count")):
            result.record_differs.append(url)
        low, high = sorted((theirs["words_joined"], theirs["words_spaced"]))
        checks = {
            "title": ours["title"] == theirs["title"],
            "h1": ours["h1"] == theirs["h1"],
            "h2": ours["h2"] == theirs["h2"],
            "links": ours["link_count"] == theirs["links"],
            "words": low <= ours["word_count"] <= high,
        }
        for name, same in checks.items():
            result.disagreements.setdefault(name, [])
            if not same:
                result.disagreements[name].append(url)
    return result
