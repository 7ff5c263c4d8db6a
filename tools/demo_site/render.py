"""The bodies a demo site serves: HTML pages (from their ``PageSpec``), PDFs and PNGs.

Everything is drawn from ``random.Random(f"{seed}:{path}")``, so a page's body is the same in
every process.
"""

from __future__ import annotations

import html
import posixpath
import random
import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tools.demo_site.vocabulary import (
    MORE_HEADINGS,
    OVERVIEW_HEADINGS,
    RELATED_HEADINGS,
    SECTION_BLURBS,
    SECTION_TITLES,
    WORDS,
)

if TYPE_CHECKING:
    from tools.demo_site.model import DemoSite, PageSpec

__all__ = [
    "description",
    "paragraph",
    "pdf_bytes",
    "png_bytes",
    "render_dense_html",
    "render_html",
    "slug",
    "unslug",
]


def description(site: DemoSite, spec: PageSpec) -> str:
    """The ``<meta name="description">`` of an HTML page."""
    if spec.lang == "fr":
        return f"{spec.title} - page en français, {site.university}."
    if spec.lang == "de":
        return f"{spec.title} - deutschsprachige Seite, {site.university}."
    if spec.path == "/":
        return f"{site.university}: departments, courses, people, news and events."
    blurb = SECTION_BLURBS.get(spec.section, "information")
    return f"{spec.title}: {blurb} at {site.university}."


def render_html(site: DemoSite, path: str, base_url: str) -> str:
    """The HTML body of page ``path`` when served at ``base_url`` (deterministic)."""
    if site.profile == "dense":
        return render_dense_html(site, path, base_url)
    spec = site.pages[path]
    rng = random.Random(f"{site.seed}:{path}")
    base = base_url.rstrip("/")
    esc = html.escape
    title = esc(spec.title)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{spec.lang}">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f'<meta name="description" content="{esc(description(site, spec))}">',
        f'<link rel="canonical" href="{esc(base + path)}">',
        "</head>",
        "<body>",
        "<header><nav>",
        " ".join(f'<a href="{href}">{esc(_anchor(site, href))}</a>' for href in site.nav),
        "</nav></header>",
        "<main>",
        f"<h1>{title}</h1>",
        f"<p>{esc(_intro(site, spec))}</p>",
        f"<h2>{OVERVIEW_HEADINGS.get(spec.lang, 'Overview')}</h2>",
    ]
    words = WORDS.get(spec.lang, WORDS["en"])
    for _ in range(rng.randint(2, 4)):
        parts.append(f"<p>{esc(paragraph(rng, words))}</p>")
    if spec.links:
        parts.append(f"<h2>{RELATED_HEADINGS.get(spec.section, 'Related pages')}</h2>")
        parts.append(_link_list(site, spec.links))
    if spec.extra_links:
        parts.append("<h2>Resources and links</h2>")
        parts.append(_link_list(site, spec.extra_links))
    parts.append(f"<h2>{MORE_HEADINGS.get(spec.lang, 'More information')}</h2>")
    parts.append(f"<p>{esc(paragraph(rng, words))}</p>")
    parts += [
        "</main>",
        "<footer>",
        " ".join(f'<a href="{href}">{esc(_anchor(site, href))}</a>' for href in site.footer),
        f"<p>&copy; {esc(site.university)}</p>",
        "</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _link_list(site: DemoSite, hrefs: Sequence[str]) -> str:
    items = "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(_anchor(site, href))}</a></li>'
        for href in hrefs
    )
    return f"<ul>{items}</ul>"


def _anchor(site: DemoSite, href: str) -> str:
    if href == "/":
        return "Home"
    if href.startswith("https://"):
        return "Partner: " + unslug(href.rsplit("/", 1)[-1])
    spec = site.pages.get(href)
    if spec is None:
        return "Archived: " + unslug(href.rstrip("/").rsplit("/", 1)[-1])
    # A redirect's anchor is its final page's title; any other page's chain is itself.
    return site.pages[site.redirect_chain(href)[-1]].title


def _intro(site: DemoSite, spec: PageSpec) -> str:
    section = SECTION_TITLES.get(spec.section)
    if spec.private:
        return f"Internal information for {site.university} staff only."
    if section is None:
        return f"Welcome to {site.university}."
    if spec.lang == "fr":
        return f"{spec.title} : une page de {site.university}."
    if spec.lang == "de":
        return f"{spec.title}: eine Seite der {site.university}."
    return f"{spec.title} is part of the {section} of {site.university}."


def slug(text: str) -> str:
    out = "".join(ch.lower() if ch.isascii() and ch.isalnum() else "-" for ch in text)
    return "-".join(part for part in out.split("-") if part)


def unslug(slug: str) -> str:
    words = slug.rsplit(".", 1)[0].split("-")
    return " ".join(w for w in words if not w.isdigit()).capitalize() or slug


def paragraph(rng: random.Random, words: Sequence[str]) -> str:
    sentences = []
    for _ in range(rng.randint(3, 6)):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(7, 16)))
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(sentences)


def png_bytes(rng: random.Random) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixel = bytes([0, rng.randrange(256), rng.randrange(256), rng.randrange(256)])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(title: str) -> bytes:
    text = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


# The link-dense documentation site ---------------------------------------------------------


def render_dense_html(site: DemoSite, path: str, base_url: str) -> str:
    """The HTML of page ``path`` of a ``dense`` site: sidebar, headings, links, footer.

    Links are spelled three ways, as generated sites do: root-relative (``/x/``), relative to
    the page (``../x/``) and absolute (``http://host/x/``); a page's own headings link as
    ``#id``. Every spelling of a URL resolves to the same URL, so a crawler must drop them.
    """
    spec = site.pages[path]
    if spec.alias_of:
        spec = site.pages[spec.alias_of]
    rng = random.Random(f"{site.seed}:{spec.path}")
    base = base_url.rstrip("/")
    here = spec.path
    esc = html.escape
    title = esc(spec.title)
    own = [link for link in spec.links if link.startswith(here + "#")]
    others = [link for link in spec.links if not link.startswith(here + "#")]

    def a(href: str, i: int, text: str | None = None) -> str:
        spelled = _spell(href, here, base, i)
        return f'<a href="{esc(spelled)}">{esc(text or _dense_anchor(site, href))}</a>'

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title} &#8212; {esc(site.university)} documentation</title>",
        f'<meta name="description" content="{esc(spec.title)}: {esc(site.university)} docs.">',
        f'<link rel="canonical" href="{esc(base + spec.path)}">',
        f'<link rel="stylesheet" href="{esc(_relative("/_static/docs.css", here))}">',
        "</head>",
        "<body>",
        '<div class="related">',
        a("/genindex/", 0, "index"),
        a("/index.html", 1, f"{site.university} documentation"),
        "</div>",
        '<nav class="sidebar"><ul>',
        *(f"<li>{a(href, i)}</li>" for i, href in enumerate(site.nav)),
        "</ul></nav>",
        '<main role="main">',
        f'<h1>{title}<a class="headerlink" href="#">&#182;</a></h1>',
    ]
    per_section = max(1, len(others) // max(1, len(own)))
    for k, anchor in enumerate(own):
        heading = anchor.partition("#")[2]
        parts.append(
            f'<section id="{esc(heading)}"><h2>{esc(heading.replace("-", " ").capitalize())}'
            f'<a class="headerlink" href="#{esc(heading)}">&#182;</a></h2>'
        )
        parts.append(f"<p>{esc(paragraph(rng, WORDS['en']))}</p>")
        chunk = others[k * per_section : (k + 1) * per_section]
        if chunk:
            items = "".join(f"<li>{a(href, i)}</li>" for i, href in enumerate(chunk))
            parts.append(f"<ul>{items}</ul>")
        parts.append("</section>")
    rest = others[len(own) * per_section :] if own else others
    if rest:
        parts.append("<ul>" + "".join(f"<li>{a(href, i)}</li>" for i, href in enumerate(rest)))
        parts.append("</ul>")
    parts += [
        "</main>",
        "<footer>",
        " ".join(a(href, i) for i, href in enumerate(site.footer)),
        f"<p>&#169; {esc(site.university)} developers.</p>",
        "</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _spell(href: str, here: str, base: str, i: int) -> str:
    if not href.startswith("/"):
        return href
    if href.startswith(here + "#"):
        return href[len(here) :]
    if i % 7 == 3:
        return _relative(href, here)
    if i % 11 == 5:
        return base + href
    return href


def _relative(href: str, here: str) -> str:
    """``href`` (root-relative, maybe with ``?query`` or ``#fragment``) relative to ``here``."""
    cut = min((i for i in (href.find("?"), href.find("#")) if i >= 0), default=len(href))
    target, suffix = href[:cut], href[cut:]
    directory = here if here.endswith("/") else here.rsplit("/", 1)[0] + "/"
    relative = posixpath.relpath(target, directory)
    if relative == ".":
        relative = "./"
    elif target.endswith("/"):
        relative += "/"
    return relative + suffix


def _dense_anchor(site: DemoSite, href: str) -> str:
    if not href.startswith("/"):
        return "Community"
    target = href.partition("#")[0].partition("?")[0]
    spec = site.pages.get(target)
    if spec is None:
        return "Removed page"
    if spec.alias_of:
        spec = site.pages[spec.alias_of]
    return site.pages[site.redirect_chain(spec.path)[-1]].title
