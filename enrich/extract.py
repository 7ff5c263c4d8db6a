"""Extract the enrichment fields from an HTML page.

:func:`extract_page` is a pure function of the page's URL, body and ``Content-Type`` header: no
I/O, no clock, the same input always gives the same output, and malformed HTML never raises
(lxml, through :mod:`parsel`, repairs what it can). The body is decoded the way browsers do,
through :func:`w3lib.encoding.html_to_unicode`: byte-order mark, then the header's charset, then
a ``<meta>`` declaration, then UTF-8, with undecodable bytes replaced.

It is CPU-bound (a 5 MiB page takes tens of milliseconds); a caller with many large pages may run
it in a worker thread (``anyio.to_thread.run_sync``) to keep its event loop responsive.

Text is read the way a reader sees it (:func:`visible_text`): the text of inline elements is
joined as it is (``<code>Py_Initialize()</code>.`` is one word, ``argv[<i>0</i>]`` one), block
elements and ``<br>`` separate words, and what a reader does not see as text is left out:
``<head>``, scripts, styles, templates, comments, and the permalink marks documentation
builders add to headings (Sphinx's and MkDocs' ``<a class="headerlink">¶</a>``, and any
``<a href="#...">`` whose text is only ``¶``, ``#``, ``§``, ``🔗`` or nothing). ``word_count``
counts the whitespace-separated tokens of that text that hold a letter or a digit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any, Final, TypedDict
from urllib.parse import urljoin, urlsplit

from parsel import Selector
from w3lib.encoding import html_to_unicode

__all__ = ["BLOCK_ELEMENTS", "ExtractedPage", "extract_page", "visible_text"]

_LINK_SCHEMES: Final = frozenset({"http", "https"})
# XPath 1.0 has no lower-case(); translate() over ASCII is enough for attribute keywords.
_LOWER: Final = "translate({}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
#: Elements whose start and end separate words (HTML's block-level elements, list items, table
#: cells, line breaks and form controls a browser lays out as boxes).
# fmt: off
BLOCK_ELEMENTS: Final = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "caption", "center", "dd",
    "details", "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
    "form", "frameset", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html",
    "legend", "li", "main", "menu", "nav", "ol", "optgroup", "option", "p", "pre", "section",
    "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
# fmt: on
#: Elements whose text a reader never sees as text.
_HIDDEN_ELEMENTS: Final = frozenset(
    {"head", "title", "script", "style", "noscript", "template", "meta", "link"}
)
#: The whole text of a permalink anchor (after removing whitespace and zero-width spaces).
_PERMALINK_MARKS: Final = frozenset({"", "¶", "#", "§", "🔗", "¤"})
#: A word holds at least one letter or digit: "»", "|" and "—" between words are not words.
_WORD: Final = re.compile(r"[^\W_]")
_ZERO_WIDTH: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


class ExtractedPage(TypedDict):
    """Fields extracted from one page; ``None`` where the page does not say."""

    title: str | None
    description: str | None
    canonical_url: str | None
    h1: list[str]
    h2: list[str]
    language: str | None
    word_count: int
    link_count: int
    internal_link_count: int
    external_link_count: int
    content_hash: str
    encoding: str


def _normalize_space(text: str) -> str:
    return " ".join(text.split())


def _first_text(selector: Selector, xpath: str) -> str | None:
    for value in selector.xpath(xpath).getall():
        text = _normalize_space(value)
        if text:
            return text
    return None


def _is_permalink(element: Any) -> bool:
    """A heading's permalink mark (Sphinx/MkDocs ``headerlink``, or a ``#``-link to itself)."""
    if "headerlink" in (element.get("class") or "").split():
        return True
    if not (element.get("href") or "").strip().startswith("#"):
        return False
    text = "".join(element.itertext()).translate(_ZERO_WIDTH).strip()
    return text in _PERMALINK_MARKS


def _text_parts(root: Any) -> Iterator[str]:
    # Iterative, in document order: each element's text, its children, a separator after a
    # block, then the element's tail (which belongs to the parent, so it is never hidden).
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
            continue
        tag = item.tag
        if not isinstance(tag, str):  # a comment or processing instruction
            continue
        name = tag.lower()
        if name in _HIDDEN_ELEMENTS or (name == "a" and _is_permalink(item)):
            continue
        block = name in BLOCK_ELEMENTS
        if block:
            yield " "
            stack.append(" ")
        if item.text:
            yield item.text
        for child in reversed(item):
            if child.tail:
                stack.append(child.tail)
            stack.append(child)


def visible_text(element: Any) -> str:
    """The text a reader sees in an lxml ``element``, words separated as described above.

    Whitespace is kept as it is in the page; the words are the tokens of ``.split()`` that hold
    a letter or a digit.
    """
    return "".join(_text_parts(element))


def _headings(selector: Selector, tag: str) -> list[str]:
    texts = (_normalize_space(visible_text(node.root)) for node in selector.xpath(f"//{tag}"))
    return [text for text in texts if text]


def _absolute(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href.strip())
    except ValueError:
        return None


def _host(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


def _canonical(selector: Selector, base: str) -> str | None:
    for link in selector.xpath("//link[@rel and @href]"):
        rel_tokens = link.attrib.get("rel", "").lower().split()
        href = link.attrib.get("href", "").strip()
        if "canonical" in rel_tokens and href:
            return _absolute(base, href)
    return None


def _language(selector: Selector) -> str | None:
    lang = _first_text(selector, "/html/@lang | /html/@xml:lang")
    if lang:
        return lang
    http_equiv = _LOWER.format("@http-equiv")
    declared = _first_text(selector, f"//meta[{http_equiv}='content-language']/@content")
    if declared:
        # The header form allows a list ("en, fr"); the first is the page's primary language.
        first = declared.split(",")[0].strip()
        return first or None
    return None


def _count_links(selector: Selector, base: str, page_host: str | None) -> tuple[int, int]:
    internal = external = 0
    for raw_href in selector.xpath("//a/@href").getall():
        href = raw_href.strip()
        if not href or href.startswith("#"):
            continue
        absolute = _absolute(base, href)
        if absolute is None:
            continue
        try:
            scheme = urlsplit(absolute).scheme.lower()
        except ValueError:
            continue
        # Keeping only http(s) drops javascript:, mailto:, tel:, data: and the like.
        if scheme not in _LINK_SCHEMES:
            continue
        if page_host is not None and _host(absolute) == page_host:
            internal += 1
        else:
            external += 1
    return internal, external


def extract_page(url: str, body: bytes, content_type: str | None) -> ExtractedPage:
    """Extract title, description, headings, language, word and link counts and a hash.

    ``url`` is the address the body was served from (a fetch's final URL): relative links and the
    canonical URL are resolved against it, or against the page's ``<base href>``. Links are the
    ``<a href>`` that lead to an http(s) URL; fragments-only, ``javascript:``, ``mailto:`` and
    other schemes are not counted. A link is internal when its host equals the page's host.
    Headings and the word count read the text as a reader sees it (see the module docstring:
    inline markup joined, permalink marks left out); headings are whitespace-normalised and
    empty ones dropped. ``content_hash`` is the SHA-256
    hex digest of the raw body; ``encoding`` is the charset the body was decoded with.
    """
    encoding, text = html_to_unicode(content_type, body)
    selector = Selector(text=text, type="html")

    base = url
    base_href = _first_text(selector, "//base/@href")
    if base_href:
        base = _absolute(url, base_href) or url

    description_name = _LOWER.format("@name")
    root = selector.root
    text = visible_text(root) if isinstance(getattr(root, "tag", None), str) else ""
    words = [token for token in text.split() if _WORD.search(token)]
    internal, external = _count_links(selector, base, _host(url))

    return ExtractedPage(
        title=_first_text(selector, "//title[not(ancestor::svg)]/text()"),
        description=_first_text(selector, f"//meta[{description_name}='description']/@content"),
        canonical_url=_canonical(selector, base),
        h1=_headings(selector, "h1"),
        h2=_headings(selector, "h2"),
        language=_language(selector),
        word_count=len(words),
        link_count=internal + external,
        internal_link_count=internal,
        external_link_count=external,
        content_hash=hashlib.sha256(body).hexdigest(),
        encoding=encoding,
    )
