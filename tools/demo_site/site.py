"""A deterministic, offline university website for crawl tests and benchmarks.

Run it::

    python -m tools.demo_site --port 0 --pages N --seed S [--host 127.0.0.1]
                              [--latency-ms MS] [--slow-ms MS] [--transient-share F]
                              [--transient-failures K] [--transient-reset-share F]

The first line on stdout is the base URL (``http://127.0.0.1:41234``); the site then serves until
SIGINT or SIGTERM and exits with code 0.  Nothing else is written to stdout.

Shape
-----
``build_site(pages, seed)`` draws the whole site from ``random.Random(seed)``, so a given
``(pages, seed)`` always yields the same pages, links and special cases, in any process.  Pages are
*specified* at build time and rendered on request, so 100,000 pages build in a few seconds.

* ``/`` links to the section indexes ``/departments/``, ``/courses/``, ``/people/``, ``/news/``,
  ``/events/`` (also the navigation bar of every page), the static pages ``/about/``,
  ``/admissions/``, ``/research/``, ``/contact/``, and the latest news and events.
* Each section's items form a tree below its index: the index links to the first ``F`` items, item
  ``j`` links to items ``(j + 1) * F ...`` as "related" pages.  ``F`` (5 or more) is chosen so that
  every item is at most 6 links from ``/``.  Items also cross-link (course -> department, person ->
  department, department -> some of its courses and people).
* Every HTML page has ``<html lang>``, ``<title>``, ``<meta name="description">``, an absolute
  ``<link rel="canonical">``, an ``<h1>``, ``<h2>`` headings and paragraphs of text; about 3% of the
  pages are in French or German (``lang="fr"`` / ``lang="de"``).

Exactly ``pages`` public HTML pages answer 200 (eventually) and are reachable from ``/`` by a
crawler that obeys robots.txt; ``DemoSite.expected_ok_urls(base_url)`` lists them.  Transient and
slow pages are among them; ``/private/`` pages are *not* (they are extra).

Special cases (shares of ``pages``, each at least one when the site has room for it)
-------------------------------------------------------------------------------------
* broken links, 404 (~3%): linked paths such as ``/courses/discontinued-4/`` that are not served;
* redirects (~3%): ``/old/<real path>`` answers 301 or 302 to a real page; about a quarter of them
  are chains of 2-3 hops (``/go/K`` -> ``/go/K/hop-1`` -> ... -> real page);
* slow pages (~2%): real pages that wait ``--slow-ms`` (default 300) before answering;
* transient errors (~2%, ``--transient-share``): real pages whose first request (per path, per
  server process, any method) answers 503; every later request answers 200.  They may have pages
  below them in the tree, so a crawler that does not retry 503 misses those too.
  ``--transient-failures K`` makes the first ``K`` requests fail instead of one, and
  ``--transient-reset-share F`` makes that share of the transient pages drop the connection
  without answering (the client sees a reset) instead of answering 503;
* permanent errors (~1%): ``/apps/...`` paths that always answer 500;
* files (~3%): ``/files/*.pdf`` (``application/pdf``, a small valid PDF) and ``/images/*.png``
  (``image/png``, a 1x1 PNG), half each;
* private pages (~1%): ``/private/...`` pages, disallowed by ``/robots.txt`` but linked from public
  pages and served with 200, so a test can tell whether robots.txt was obeyed;
* external links (~1%): ``https://partner.example.invalid/...``, never served.

Every special link sits on a page at most 5 links from ``/``, so it is itself at most 6 away.

Options and endpoints
---------------------
``--latency-ms`` (default 0) delays every response, ``--slow-ms`` is the extra delay of slow pages;
both use ``asyncio.sleep``.  ``GET /__stats`` returns ``{"requests": N, "paths": {path: count}}``,
counting every request except those to ``/__stats`` itself; ``POST /__stats/reset`` zeroes the
counters (add ``?transient=1`` to also re-arm the transient 503s).

Python API: ``build_site``, ``make_app``, ``serve_site``, ``serve_demo_site`` (in-process) and
``start_demo_site_process`` / ``stop_demo_site_process`` (a subprocess, as the orchestrator uses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TextIO

from aiohttp import web

from tools._argtypes import fraction, non_negative_float, positive_int

__all__ = [
    "DEFAULT_SLOW_MS",
    "EXTERNAL_HOST",
    "MAX_DEPTH",
    "ROBOTS_DISALLOWED_PREFIX",
    "DemoSite",
    "DemoSiteStartError",
    "PageKind",
    "PageSpec",
    "build_site",
    "main",
    "make_app",
    "serve_demo_site",
    "serve_site",
    "start_demo_site_process",
    "stop_demo_site_process",
]

MAX_DEPTH: Final = 6
"""Every served or linked URL is at most this many links from ``/``."""
ROBOTS_DISALLOWED_PREFIX: Final = "/private/"
EXTERNAL_HOST: Final = "partner.example.invalid"
DEFAULT_SLOW_MS: Final = 300
DEFAULT_TRANSIENT_SHARE: Final = 0.02
STATS_PATH: Final = "/__stats"

_MIN_FANOUT: Final = 5
# Items sit at tree levels 0..4 below their section index, i.e. at depth 2..6 from "/".
_ITEM_LEVELS: Final = 5
_MAX_HOST_DEPTH: Final = MAX_DEPTH - 1


class PageKind(StrEnum):
    """What a served path answers."""

    HTML = "html"
    """An HTML page answering 200 (possibly slow, or 503 on its first request)."""
    REDIRECT = "redirect"
    """A 301/302 to ``redirect_to`` (another redirect or an HTML page)."""
    PDF = "pdf"
    IMAGE = "image"
    ERROR = "error"
    """Always 500."""


@dataclass(frozen=True, slots=True)
class PageSpec:
    """One served path.  HTML is rendered from this on request (see ``DemoSite.render_html``)."""

    path: str
    kind: PageKind
    title: str
    section: str = ""
    lang: str = "en"
    links: tuple[str, ...] = ()
    """Page-specific internal links (tree parent/children and cross-links), besides navigation."""
    extra_links: tuple[str, ...] = ()
    """Special links: broken, redirects, files, errors, private pages, external URLs."""
    redirect_to: str = ""
    redirect_status: int = 0
    slow: bool = False
    transient_failures: int = 0
    """How many first requests to this path answer 503 before it answers 200."""
    transient_reset: bool = False
    """Its failing requests drop the connection instead of answering 503."""
    private: bool = False

    @property
    def is_public_html(self) -> bool:
        """True for the pages counted in ``DemoSite.page_count``."""
        return self.kind is PageKind.HTML and not self.private


@dataclass(frozen=True)
class DemoSite:
    """The specification of a whole demo site, as built by ``build_site``."""

    page_count: int
    seed: int
    university: str
    pages: MappingProxyType[str, PageSpec]
    """Every served path (except ``/robots.txt``) in build order, ``/`` first."""
    nav: tuple[str, ...]
    """Links in every page's header (``/`` and the section indexes)."""
    footer: tuple[str, ...]
    broken_paths: tuple[str, ...]
    """Linked internal paths that answer 404."""
    external_urls: tuple[str, ...]
    robots_disallowed_prefix: str = ROBOTS_DISALLOWED_PREFIX

    def html_pages(self) -> list[PageSpec]:
        """The ``page_count`` public HTML pages (transient and slow ones included)."""
        return [spec for spec in self.pages.values() if spec.is_public_html]

    def expected_ok_urls(self, base_url: str, *, include_private: bool = False) -> list[str]:
        """Absolute URLs of the pages a full crawl from ``/`` finds answering 200 with HTML.

        ``include_private`` adds the ``/private/`` pages a crawler ignoring robots.txt also finds.
        """
        base = base_url.rstrip("/")
        return [
            base + spec.path
            for spec in self.pages.values()
            if spec.kind is PageKind.HTML and (include_private or not spec.private)
        ]

    def expected_linked_urls(self, base_url: str, *, include_disallowed: bool = False) -> list[str]:
        """Absolute URLs of ``/`` and every internal link on the pages a full crawl fetches.

        That is the public pages plus broken links, redirect entry points (not their later hops),
        files and error pages; ``include_disallowed`` adds the linked ``/private/`` pages.
        """
        base = base_url.rstrip("/")
        found = {"/": None}
        for spec in self.pages.values():
            if spec.is_public_html:
                found.update(dict.fromkeys(p for p in self.links_of(spec.path) if p[0] == "/"))
        return [
            base + path
            for path in found
            if include_disallowed or not path.startswith(self.robots_disallowed_prefix)
        ]

    def summary(self) -> dict[str, int]:
        """How many of each kind of page and special case the site has (for logs)."""
        return {
            "pages": self.page_count,
            "slow": len(self.slow_paths()),
            "transient": len(self.transient_paths()),
            "private": len(self.private_paths()),
            **{f"{kind}": len(self.paths_of_kind(kind)) for kind in PageKind if kind != "html"},
            "broken": len(self.broken_paths),
            "external": len(self.external_urls),
        }

    def paths_of_kind(self, kind: PageKind) -> list[str]:
        """Served paths of one kind, in build order."""
        return [spec.path for spec in self.pages.values() if spec.kind is kind]

    def slow_paths(self) -> list[str]:
        """Pages that wait ``slow_ms`` before answering."""
        return [spec.path for spec in self.pages.values() if spec.slow]

    def transient_paths(self) -> list[str]:
        """Pages whose first request(s) fail (503, or a dropped connection), then answer 200."""
        return [spec.path for spec in self.pages.values() if spec.transient_failures]

    def private_paths(self) -> list[str]:
        """Pages under the robots.txt-disallowed prefix."""
        return [spec.path for spec in self.pages.values() if spec.private]

    def redirect_chain(self, path: str) -> list[str]:
        """The hops followed from redirect ``path``: ``[path, ..., final HTML page]``."""
        chain = [path]
        spec = self.pages[path]
        while spec.kind is PageKind.REDIRECT:
            chain.append(spec.redirect_to)
            spec = self.pages[spec.redirect_to]
        return chain

    def links_of(self, path: str) -> tuple[str, ...]:
        """Every link on HTML page ``path`` as rendered (root-relative paths or external URLs)."""
        spec = self.pages[path]
        return tuple(dict.fromkeys((*self.nav, *spec.links, *spec.extra_links, *self.footer)))

    def link_depths(self, *, obey_robots: bool = True) -> dict[str, int]:
        """Breadth-first link distance from ``/`` of every internal path a crawler would request.

        Redirect targets get the depth of the redirect, as Scrapy counts them.  Broken paths are
        included; external URLs are not.
        """
        depths = {"/": 0}
        queue = deque(["/"])
        while queue:
            current = queue.popleft()
            spec = self.pages.get(current)
            if spec is None:
                continue
            if spec.kind is PageKind.REDIRECT:
                targets: tuple[str, ...] = (spec.redirect_to,)
                next_depth = depths[current]
            elif spec.kind is PageKind.HTML:
                targets = self.links_of(current)
                next_depth = depths[current] + 1
            else:
                continue
            for target in targets:
                if not target.startswith("/") or target in depths:
                    continue
                if obey_robots and target.startswith(self.robots_disallowed_prefix):
                    continue
                depths[target] = next_depth
                queue.append(target)
        return depths

    def robots_txt(self) -> str:
        """The body of ``/robots.txt``."""
        return f"User-agent: *\nDisallow: {self.robots_disallowed_prefix}\n"

    def description(self, spec: PageSpec) -> str:
        """The ``<meta name="description">`` of an HTML page."""
        if spec.lang == "fr":
            return f"{spec.title} - page en français, {self.university}."
        if spec.lang == "de":
            return f"{spec.title} - deutschsprachige Seite, {self.university}."
        if spec.path == "/":
            return f"{self.university}: departments, courses, people, news and events."
        blurb = _SECTION_BLURBS.get(spec.section, "information")
        return f"{spec.title}: {blurb} at {self.university}."

    def render_html(self, path: str, base_url: str) -> str:
        """The HTML body of page ``path`` when served at ``base_url`` (deterministic)."""
        spec = self.pages[path]
        rng = random.Random(f"{self.seed}:{path}")
        base = base_url.rstrip("/")
        esc = html.escape
        title = esc(spec.title)
        parts = [
            "<!DOCTYPE html>",
            f'<html lang="{spec.lang}">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{title}</title>",
            f'<meta name="description" content="{esc(self.description(spec))}">',
            f'<link rel="canonical" href="{esc(base + path)}">',
            "</head>",
            "<body>",
            "<header><nav>",
            " ".join(f'<a href="{href}">{esc(self._anchor(href))}</a>' for href in self.nav),
            "</nav></header>",
            "<main>",
            f"<h1>{title}</h1>",
            f"<p>{esc(self._intro(spec))}</p>",
            f"<h2>{_OVERVIEW_HEADINGS.get(spec.lang, 'Overview')}</h2>",
        ]
        words = _WORDS.get(spec.lang, _WORDS["en"])
        for _ in range(rng.randint(2, 4)):
            parts.append(f"<p>{esc(_paragraph(rng, words))}</p>")
        if spec.links:
            parts.append(f"<h2>{_RELATED_HEADINGS.get(spec.section, 'Related pages')}</h2>")
            parts.append(self._link_list(spec.links))
        if spec.extra_links:
            parts.append("<h2>Resources and links</h2>")
            parts.append(self._link_list(spec.extra_links))
        parts.append(f"<h2>{_MORE_HEADINGS.get(spec.lang, 'More information')}</h2>")
        parts.append(f"<p>{esc(_paragraph(rng, words))}</p>")
        parts += [
            "</main>",
            "<footer>",
            " ".join(f'<a href="{href}">{esc(self._anchor(href))}</a>' for href in self.footer),
            f"<p>&copy; {esc(self.university)}</p>",
            "</footer>",
            "</body>",
            "</html>",
            "",
        ]
        return "\n".join(parts)

    def _link_list(self, hrefs: Sequence[str]) -> str:
        items = "".join(
            f'<li><a href="{html.escape(href)}">{html.escape(self._anchor(href))}</a></li>'
            for href in hrefs
        )
        return f"<ul>{items}</ul>"

    def _anchor(self, href: str) -> str:
        if href == "/":
            return "Home"
        if href.startswith("https://"):
            return "Partner: " + _unslug(href.rsplit("/", 1)[-1])
        spec = self.pages.get(href)
        if spec is None:
            return "Archived: " + _unslug(href.rstrip("/").rsplit("/", 1)[-1])
        if spec.kind is PageKind.REDIRECT:
            return self.pages[self.redirect_chain(href)[-1]].title
        return spec.title

    def _intro(self, spec: PageSpec) -> str:
        section = _SECTION_TITLES.get(spec.section)
        if spec.private:
            return f"Internal information for {self.university} staff only."
        if section is None:
            return f"Welcome to {self.university}."
        if spec.lang == "fr":
            return f"{spec.title} : une page de {self.university}."
        if spec.lang == "de":
            return f"{spec.title}: eine Seite der {self.university}."
        return f"{spec.title} is part of the {section} of {self.university}."


def build_site(
    pages: int,
    seed: int,
    *,
    transient_share: float = DEFAULT_TRANSIENT_SHARE,
    transient_failures: int = 1,
    transient_reset_share: float = 0.0,
) -> DemoSite:
    """Specify a demo site of ``pages`` public HTML pages, drawn from ``random.Random(seed)``.

    ``transient_share`` of the pages (at least one) fail their first ``transient_failures``
    requests; ``transient_reset_share`` of those fail by dropping the connection, the rest with
    503. The defaults give the site every earlier version served for the same pages and seed.
    """
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages}")
    if not 0.0 <= transient_share <= 0.5:
        raise ValueError(f"transient_share must be between 0 and 0.5, got {transient_share}")
    if transient_failures < 1:
        raise ValueError(f"transient_failures must be at least 1, got {transient_failures}")
    if not 0.0 <= transient_reset_share <= 1.0:
        raise ValueError(
            f"transient_reset_share must be between 0 and 1, got {transient_reset_share}"
        )
    builder = _Builder(pages, seed)
    builder.transient_share = transient_share
    builder.transient_failures = transient_failures
    builder.transient_reset_share = transient_reset_share
    return builder.build()


# --------------------------------------------------------------------------------------------
# Building


@dataclass
class _Section:
    name: str
    index_path: str
    items: list[tuple[str, str]] = field(default_factory=list)  # (path, title)


class _Builder:
    def __init__(self, pages: int, seed: int) -> None:
        self.n = pages
        self.seed = seed
        self.rng = random.Random(seed)
        self.specs: dict[str, PageSpec] = {}
        self.tree_depth: dict[str, int] = {}
        self.broken: list[str] = []
        self.external: list[str] = []
        self.transient_share = DEFAULT_TRANSIENT_SHARE
        self.transient_failures = 1
        self.transient_reset_share = 0.0

    def build(self) -> DemoSite:
        rng = self.rng
        university = rng.choice(_UNIVERSITIES)
        rest = self.n - 1
        section_names = _SECTIONS[: min(len(_SECTIONS), rest)]
        rest -= len(section_names)
        statics = _STATIC_PAGES[: min(len(_STATIC_PAGES), rest)]
        rest -= len(statics)
        counts = _allocate(rest, section_names)
        sections = [_Section(name, f"/{name}/") for name in section_names]
        by_name = {section.name: section for section in sections}

        dept_names = rng.sample(_DEPARTMENTS, counts.get("departments", 0))
        code_depts = dept_names or rng.sample(_DEPARTMENTS, 8)
        for name, count in counts.items():
            by_name[name].items = [self._item(name, i, code_depts) for i in range(count)]
        fanout = _fanout(max(counts.values(), default=0))

        nav = ("/", *(section.index_path for section in sections))
        static_paths = [path for path, _ in statics]
        footer = tuple(path for path in static_paths if path in ("/about/", "/contact/"))
        news = by_name["news"].items if "news" in by_name else []
        events = by_name["events"].items if "events" in by_name else []
        home_links = (*static_paths, *(p for p, _ in news[:3]), *(p for p, _ in events[:3]))
        self._add("/", university, "", 0, home_links)
        for section in sections:
            title = _SECTION_TITLES[section.name]
            top = [path for path, _ in section.items[:fanout]]
            self._add(section.index_path, title, section.name, 1, top)
        for path, title_template in statics:
            self._add(path, title_template.format(u=university), "static", 1, ())

        departments = by_name["departments"].items if "departments" in by_name else []
        nd = len(departments)
        for section in sections:
            items = section.items
            levels: list[int] = []
            for j, (path, title) in enumerate(items):
                level = 0 if j < fanout else levels[j // fanout - 1] + 1
                levels.append(level)
                parent = section.index_path if j < fanout else items[j // fanout - 1][0]
                first_child = (j + 1) * fanout
                children = [p for p, _ in items[first_child : first_child + fanout]]
                cross = self._cross_links(section.name, j, nd, by_name)
                self._add(path, title, section.name, 2 + level, (parent, *children, *cross))

        self._mark_flags()
        extras = self._specials(by_name)
        for host, links in extras.items():
            self.specs[host] = replace(self.specs[host], extra_links=tuple(links))
        return DemoSite(
            page_count=self.n,
            seed=self.seed,
            university=university,
            pages=MappingProxyType(self.specs),
            nav=nav,
            footer=footer,
            broken_paths=tuple(self.broken),
            external_urls=tuple(self.external),
        )

    def _add(self, path: str, title: str, section: str, depth: int, links: Sequence[str]) -> None:
        self.specs[path] = PageSpec(path, PageKind.HTML, title, section, links=tuple(links))
        self.tree_depth[path] = depth

    def _item(self, section: str, i: int, code_depts: Sequence[str]) -> tuple[str, str]:
        rng = self.rng
        if section == "departments":
            name = code_depts[i]
            return f"/departments/{_slug(name)}/", f"Department of {name}"
        if section == "courses":
            dept = code_depts[i % len(code_depts)]
            abbr = _DEPARTMENTS_ABBR[dept]
            number = 100 + i // len(code_depts)
            topic = f"{rng.choice(_COURSE_PREFIXES)}{rng.choice(_TOPICS)}"
            return f"/courses/{abbr.lower()}-{number}/", f"{abbr} {number}: {topic}"
        if section == "people":
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            role = rng.choice(_ROLES)
            return f"/people/{_slug(first)}-{_slug(last)}-{i + 1}/", f"{first} {last}, {role}"
        if section == "news":
            year = rng.randrange(2016, 2026)
            headline = (
                f"{rng.choice(code_depts)} {rng.choice(_NEWS_SUBJECTS)} "
                f"{rng.choice(_NEWS_VERBS)} {rng.choice(_NEWS_OBJECTS)}"
            )
            return f"/news/{year}/{_slug(headline)}-{i + 1}/", headline
        kind = rng.choice(_EVENT_KINDS)
        topic = rng.choice(_TOPICS)
        return f"/events/{_slug(kind)}-{_slug(topic)}-{i + 1}/", f"{kind}: {topic}"

    @staticmethod
    def _cross_links(
        section: str, j: int, nd: int, by_name: dict[str, _Section]
    ) -> tuple[str, ...]:
        if nd == 0:
            return ()
        departments = by_name["departments"].items
        if section == "departments":
            courses = by_name["courses"].items if "courses" in by_name else []
            people = by_name["people"].items if "people" in by_name else []
            picked = [courses[k][0] for k in range(j, len(courses), nd)][:3]
            picked += [people[k][0] for k in range(j, len(people), nd)][:2]
            return tuple(picked)
        return (departments[j % nd][0],)

    def _mark_flags(self) -> None:
        rng = self.rng
        candidates = [p for p in self.tree_depth if p != "/" and not _is_index(p)]
        n_slow = min(_share(self.n, 0.02), len(candidates))
        n_transient = min(_share(self.n, self.transient_share), len(candidates) - n_slow)
        picked = rng.sample(candidates, n_slow + n_transient)
        for path in picked[:n_slow]:
            self.specs[path] = replace(self.specs[path], slow=True)
        # Which transient pages reset is a prefix of the draw, so it takes no random numbers:
        # the rest of the site stays the same whatever the share.
        n_reset = round(n_transient * self.transient_reset_share)
        for k, path in enumerate(picked[n_slow:]):
            self.specs[path] = replace(
                self.specs[path],
                transient_failures=self.transient_failures,
                transient_reset=k < n_reset,
            )
        n_lang = min(_share(self.n, 0.03), len(candidates))
        for path in rng.sample(candidates, n_lang):
            lang = rng.choice(("fr", "fr", "de"))
            suffix = " (version française)" if lang == "fr" else " (deutsche Fassung)"
            spec = self.specs[path]
            self.specs[path] = replace(spec, lang=lang, title=spec.title + suffix)

    def _specials(self, by_name: dict[str, _Section]) -> dict[str, list[str]]:
        rng = self.rng
        n = self.n
        hosts = [p for p, d in self.tree_depth.items() if 1 <= d <= _MAX_HOST_DEPTH] or ["/"]
        extras: dict[str, list[str]] = {}

        def attach(target: str) -> None:
            extras.setdefault(rng.choice(hosts), []).append(target)

        prefixes = [(s.index_path, _BROKEN_WORDS[s.name]) for s in by_name.values()]
        for k in range(_share(n, 0.03)):
            prefix, word = rng.choice(prefixes) if prefixes else ("/", "old-page")
            self.broken.append(f"{prefix}{word}-{k + 1}/")
            attach(self.broken[-1])

        stable = [
            p
            for p, spec in self.specs.items()
            if p != "/" and not spec.transient_failures and not spec.slow
        ] or ["/"]
        n_redirects = _share(n, 0.03)
        n_chains = max(1, n_redirects // 4) if n_redirects >= 2 else 0
        targets = (
            rng.sample(stable, n_redirects)
            if len(stable) >= n_redirects
            else [rng.choice(stable) for _ in range(n_redirects)]
        )
        for target in targets[: n_redirects - n_chains]:
            path = f"/old{target}"
            if path in self.specs:
                continue
            self._redirect(path, target, rng.choice((301, 301, 302)))
            attach(path)
        for k, target in enumerate(targets[n_redirects - n_chains :]):
            hops = [f"/go/{k + 1}"] + [f"/go/{k + 1}/hop-{h}" for h in range(1, rng.randint(2, 3))]
            for hop, next_hop in zip(hops, [*hops[1:], target], strict=True):
                self._redirect(hop, next_hop, rng.choice((301, 302)))
            attach(hops[0])

        n_files = max(2, round(n * 0.03))  # at least one PDF and one image
        for k in range(n_files):
            if k % 2 == 0:
                name = rng.choice(_DOCUMENTS)
                path = f"/files/{_slug(name)}-{k + 1}.pdf"
                self.specs[path] = PageSpec(path, PageKind.PDF, f"{name} (PDF)")
            else:
                name = rng.choice(_IMAGES)
                path = f"/images/{_slug(name)}-{k + 1}.png"
                self.specs[path] = PageSpec(path, PageKind.IMAGE, name)
            attach(path)

        for k in range(_share(n, 0.01)):
            name = rng.choice(_APPS)
            path = f"/apps/{_slug(name)}-{k + 1}/"
            self.specs[path] = PageSpec(path, PageKind.ERROR, name)
            attach(path)

        for k in range(_share(n, 0.01)):
            name = rng.choice(_PRIVATE_DOCS)
            path = f"{ROBOTS_DISALLOWED_PREFIX}{_slug(name)}-{k + 1}/"
            title = f"Staff intranet: {name}"
            self.specs[path] = PageSpec(path, PageKind.HTML, title, "private", private=True)
            attach(path)

        for k in range(_share(n, 0.01)):
            url = f"https://{EXTERNAL_HOST}/{_slug(rng.choice(_PARTNERS))}-{k + 1}"
            self.external.append(url)
            attach(url)
        return extras

    def _redirect(self, path: str, target: str, status: int) -> None:
        self.specs[path] = PageSpec(
            path, PageKind.REDIRECT, "", redirect_to=target, redirect_status=status
        )


def _is_index(path: str) -> bool:
    return path.count("/") == 2 and path.strip("/") in _SECTIONS


def _share(n: int, fraction: float) -> int:
    return max(1, round(n * fraction))


def _allocate(total: int, sections: Sequence[str]) -> dict[str, int]:
    """Split ``total`` item pages over ``sections`` by weight (largest remainder, deterministic)."""
    if total <= 0 or not sections:
        return {}
    weights = {name: _SECTION_WEIGHTS[name] for name in sections}
    scale = sum(weights.values())
    exact = {name: total * weight / scale for name, weight in weights.items()}
    counts = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(sections, key=lambda name: exact[name] - counts[name], reverse=True)
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    if "departments" in counts and counts["departments"] > len(_DEPARTMENTS):
        overflow = counts["departments"] - len(_DEPARTMENTS)
        counts["departments"] = len(_DEPARTMENTS)
        # There are only so many departments; the rest become courses (or people, news...).
        receiver = next(name for name in sections if name != "departments")
        counts[receiver] += overflow
    return counts


def _fanout(largest_section: int) -> int:
    fanout = _MIN_FANOUT
    while sum(fanout**level for level in range(1, _ITEM_LEVELS + 1)) < largest_section:
        fanout += 1
    return fanout


def _slug(text: str) -> str:
    out = "".join(ch.lower() if ch.isascii() and ch.isalnum() else "-" for ch in text)
    return "-".join(part for part in out.split("-") if part)


def _unslug(slug: str) -> str:
    words = slug.rsplit(".", 1)[0].split("-")
    return " ".join(w for w in words if not w.isdigit()).capitalize() or slug


def _paragraph(rng: random.Random, words: Sequence[str]) -> str:
    sentences = []
    for _ in range(rng.randint(3, 6)):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(7, 16)))
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(sentences)


# --------------------------------------------------------------------------------------------
# Serving


def _png_bytes(rng: random.Random) -> bytes:
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


def _pdf_bytes(title: str) -> bytes:
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


@dataclass
class _ServerState:
    requests: int = 0
    paths: dict[str, int] = field(default_factory=dict)
    failures_served: dict[str, int] = field(default_factory=dict)


_STATE_KEY: Final = web.AppKey("demo_site_state", _ServerState)


def _error_page(status: int, message: str) -> web.Response:
    body = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{status} {message}'
        f"</title></head><body><h1>{message}</h1></body></html>\n"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def _reset_connection(transport: asyncio.Transport) -> None:
    # Linger 0 makes the close an RST: the client sees "connection reset by peer".
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def make_app(
    site: DemoSite, *, latency_ms: float = 0, slow_ms: float = DEFAULT_SLOW_MS
) -> web.Application:
    """The aiohttp application serving ``site`` (see the module docstring for the endpoints)."""
    if latency_ms < 0 or slow_ms < 0:
        raise ValueError("latency_ms and slow_ms must not be negative")
    latency = latency_ms / 1000
    slow = slow_ms / 1000
    state = _ServerState()
    app = web.Application()
    app[_STATE_KEY] = state

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": state.requests, "paths": state.paths})

    async def reset_stats(request: web.Request) -> web.Response:
        state.requests = 0
        state.paths = {}
        if request.query.get("transient", "").lower() in ("1", "true", "yes"):
            state.failures_served.clear()
        return web.json_response({"requests": 0, "paths": {}})

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(STATS_PATH):
            return _error_page(404, "Not Found")
        state.requests += 1
        state.paths[path] = state.paths.get(path, 0) + 1
        if latency:
            await asyncio.sleep(latency)
        if path == "/robots.txt":
            return web.Response(text=site.robots_txt(), content_type="text/plain")
        spec = site.pages.get(path)
        base_url = f"{request.scheme}://{request.host}"
        if spec is None:
            return _error_page(404, "Page Not Found")
        if spec.kind is PageKind.REDIRECT:
            location = base_url + spec.redirect_to
            return web.Response(status=spec.redirect_status, headers={"Location": location})
        if spec.kind is PageKind.ERROR:
            return _error_page(500, "Internal Server Error")
        if spec.kind is PageKind.PDF:
            return web.Response(body=_pdf_bytes(spec.title), content_type="application/pdf")
        if spec.kind is PageKind.IMAGE:
            png = _png_bytes(random.Random(f"{site.seed}:{path}"))
            return web.Response(body=png, content_type="image/png")
        served = state.failures_served.get(path, 0)
        if served < spec.transient_failures:
            state.failures_served[path] = served + 1
            if spec.transient_reset and request.transport is not None:
                _reset_connection(request.transport)
                return web.Response(status=503)  # never sent: the connection is gone
            return _error_page(503, "Service Temporarily Unavailable")
        if spec.slow and slow:
            await asyncio.sleep(slow)
        return web.Response(
            text=site.render_html(path, base_url), content_type="text/html", charset="utf-8"
        )

    app.router.add_get(STATS_PATH, stats)
    app.router.add_post(f"{STATS_PATH}/reset", reset_stats)
    app.router.add_get("/{tail:.*}", serve)
    return app


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping a wildcard bind to a connectable address
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def serve_site(
    site: DemoSite,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    slow_ms: float = DEFAULT_SLOW_MS,
) -> AsyncIterator[str]:
    """Serve ``site`` in the running event loop; yields the base URL, stops on exit."""
    app = make_app(site, latency_ms=latency_ms, slow_ms=slow_ms)
    # A short shutdown timeout: slow pages in flight must not hold up a stop.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        tcp_site = web.TCPSite(runner, host, port)
        await tcp_site.start()
        bound_port = runner.addresses[0][1]
        yield f"http://{_display_host(host)}:{bound_port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_demo_site(
    pages: int,
    seed: int,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    latency_ms: float = 0,
    slow_ms: float = DEFAULT_SLOW_MS,
) -> AsyncIterator[str]:
    """Build the site for ``(pages, seed)``, serve it in the running loop; yield the base URL."""
    site = build_site(pages, seed)
    async with serve_site(
        site, host=host, port=port, latency_ms=latency_ms, slow_ms=slow_ms
    ) as base_url:
        yield base_url


# --------------------------------------------------------------------------------------------
# Subprocess launcher and command line


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
    ``popen_options`` (the orchestrator makes the site die with it this way). ``extra_args``
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo_site",
        description="Serve a deterministic university demo site; prints its base URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 for a free one (default)")
    parser.add_argument("--pages", type=positive_int, default=100, help="public HTML pages")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--latency-ms", type=non_negative_float, default=0.0, help="delay added to every response"
    )
    parser.add_argument(
        "--slow-ms",
        type=non_negative_float,
        default=float(DEFAULT_SLOW_MS),
        help=f"extra delay of slow pages (default {DEFAULT_SLOW_MS})",
    )
    parser.add_argument(
        "--transient-share",
        type=fraction(0.5),
        default=DEFAULT_TRANSIENT_SHARE,
        help=f"share of pages that fail before they succeed (default {DEFAULT_TRANSIENT_SHARE})",
    )
    parser.add_argument(
        "--transient-failures",
        type=positive_int,
        default=1,
        help="how many first requests of a transient page fail (default 1)",
    )
    parser.add_argument(
        "--transient-reset-share",
        type=fraction(1.0),
        default=0.0,
        help="share of the transient pages that drop the connection instead of answering 503",
    )
    return parser


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    site = build_site(
        args.pages,
        args.seed,
        transient_share=args.transient_share,
        transient_failures=args.transient_failures,
        transient_reset_share=args.transient_reset_share,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve_site(
        site, host=args.host, port=args.port, latency_ms=args.latency_ms, slow_ms=args.slow_ms
    ) as base_url:
        print(base_url, flush=True)
        details = ", ".join(f"{key} {value}" for key, value in site.summary().items())
        print(f"demo site at {base_url}: seed {site.seed}, {details}", file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    asyncio.run(_serve_until_signalled(args))
    return 0


# --------------------------------------------------------------------------------------------
# Vocabulary

_UNIVERSITIES = (
    "Northfield University",
    "Ashbury University",
    "University of Westmere",
    "Carrow Institute of Technology",
    "Kingsbridge University",
)
_SECTIONS = ("departments", "courses", "people", "news", "events")
_SECTION_WEIGHTS = {"departments": 6, "courses": 34, "people": 30, "news": 20, "events": 10}
_SECTION_TITLES = {
    "departments": "Academic Departments",
    "courses": "Course Catalogue",
    "people": "People Directory",
    "news": "University News",
    "events": "Events Calendar",
    "static": "University Information",
}
_SECTION_BLURBS = {
    "departments": "academic department",
    "courses": "course information",
    "people": "staff and student profile",
    "news": "news story",
    "events": "event details",
    "static": "university information",
    "private": "staff intranet",
}
_RELATED_HEADINGS = {
    "departments": "Departments, courses and people",
    "courses": "Related courses",
    "people": "Colleagues and department",
    "news": "More news",
    "events": "Related events",
}
_OVERVIEW_HEADINGS = {"en": "Overview", "fr": "Présentation", "de": "Überblick"}
_MORE_HEADINGS = {"en": "More information", "fr": "En savoir plus", "de": "Weitere Informationen"}
_BROKEN_WORDS = {
    "departments": "merged",
    "courses": "discontinued",
    "people": "former-staff",
    "news": "expired",
    "events": "cancelled",
}
_STATIC_PAGES = (
    ("/about/", "About {u}"),
    ("/admissions/", "Admissions"),
    ("/research/", "Research at {u}"),
    ("/contact/", "Contact Us"),
)
_DEPARTMENTS_ABBR = {
    "Computer Science": "CS",
    "Mathematics": "MATH",
    "Physics": "PHYS",
    "Chemistry": "CHEM",
    "Biology": "BIO",
    "History": "HIST",
    "Philosophy": "PHIL",
    "Economics": "ECON",
    "Linguistics": "LING",
    "Music": "MUS",
    "Civil Engineering": "CIVE",
    "Mechanical Engineering": "MECH",
    "Electrical Engineering": "EE",
    "Psychology": "PSY",
    "Sociology": "SOC",
    "Political Science": "POL",
    "Geography": "GEOG",
    "Earth Sciences": "EAS",
    "Classics": "CLAS",
    "Modern Languages": "LANG",
    "Law": "LAW",
    "Medicine": "MED",
    "Nursing": "NURS",
    "Education": "EDU",
    "Architecture": "ARCH",
    "Fine Art": "ART",
    "Statistics": "STAT",
    "Astronomy": "ASTR",
    "Anthropology": "ANTH",
    "Business": "BUS",
}
_DEPARTMENTS = tuple(_DEPARTMENTS_ABBR)
_COURSE_PREFIXES = (
    "Introduction to ",
    "Advanced ",
    "Topics in ",
    "Foundations of ",
    "Seminar in ",
    "Applied ",
    "",
)
_TOPICS = (
    "Algorithms",
    "Linear Algebra",
    "Thermodynamics",
    "Organic Chemistry",
    "Cell Biology",
    "Medieval Europe",
    "Ethics",
    "Macroeconomics",
    "Phonology",
    "Music Theory",
    "Structural Analysis",
    "Fluid Mechanics",
    "Signal Processing",
    "Cognitive Psychology",
    "Urban Sociology",
    "Comparative Politics",
    "Climate Systems",
    "Roman Literature",
    "Constitutional Law",
    "Public Health",
    "Learning Theory",
    "Sustainable Design",
    "Probability",
    "Galaxies and Cosmology",
    "Machine Learning",
    "Data Visualisation",
    "Renaissance Art",
    "Quantum Mechanics",
    "Genetics",
    "Corporate Finance",
)
_FIRST_NAMES = (
    "Alice", "Amara", "Ben", "Carlos", "Chen", "Clara", "David", "Elena", "Farah", "George",
    "Hannah", "Ibrahim", "Isabel", "James", "Julia", "Kenji", "Laura", "Leon", "Maria", "Mohammed",
    "Nadia", "Oliver", "Priya", "Rafael", "Sara", "Sofia", "Thomas", "Uma", "Victor", "Yuki",
)  # fmt: skip
_LAST_NAMES = (
    "Anderson", "Baker", "Chowdhury", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Lee", "Martin", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi", "Smith",
    "Tanaka", "Urquhart", "Varga", "Walsh", "Xu", "Yilmaz", "Zhang", "Murphy", "Novak", "Silva",
)  # fmt: skip
_ROLES = (
    "Professor",
    "Associate Professor",
    "Senior Lecturer",
    "Lecturer",
    "Research Fellow",
    "Postdoctoral Researcher",
    "PhD Student",
    "Department Administrator",
)
_NEWS_SUBJECTS = ("researchers", "students", "alumni", "team", "scientists", "lecturers")
_NEWS_VERBS = ("unveil", "win award for", "publish study on", "launch", "celebrate", "explore")
_NEWS_OBJECTS = (
    "new quantum sensor",
    "coastal erosion project",
    "open-source teaching tools",
    "community health initiative",
    "archive of medieval letters",
    "low-carbon building design",
    "language learning app",
    "deep-sea sampling mission",
    "partnership with local schools",
    "model of urban traffic",
)
_EVENT_KINDS = ("Public Lecture", "Workshop", "Open Day", "Seminar", "Concert", "Conference")
_DOCUMENTS = (
    "Undergraduate Prospectus",
    "Annual Report",
    "Course Handbook",
    "Research Strategy",
    "Exam Timetable",
    "Fees Schedule",
)
_IMAGES = ("Campus Map", "Library Photo", "Laboratory Photo", "Graduation Ceremony", "Logo")
_APPS = ("Timetable Viewer", "Room Booking", "Student Portal", "Exam Results", "Library Search")
_PRIVATE_DOCS = ("Staff Handbook", "Committee Minutes", "Internal Budget", "Payroll Calendar")
_PARTNERS = ("Exchange Programme", "Research Consortium", "Alumni Network", "Scholarships")
_WORDS = {
    "en": (
        "the", "university", "research", "students", "study", "programme", "department", "and",
        "of", "in", "with", "new", "course", "learning", "teaching", "faculty", "science",
        "community", "project", "campus", "modules", "seminar", "laboratory", "for", "our",
        "knowledge", "analysis", "methods", "theory", "practice", "international", "support",
        "library", "career", "degree", "graduate", "undergraduate", "collaboration", "innovation",
        "society", "data", "history", "culture", "future", "skills", "experience", "opportunity",
        "academic", "public", "across", "through", "develop", "explore", "discover", "apply",
    ),
    "fr": (
        "le", "la", "les", "université", "recherche", "étudiants", "cours", "programme", "et",
        "de", "des", "avec", "nouveau", "enseignement", "faculté", "sciences", "communauté",
        "projet", "campus", "séminaire", "laboratoire", "pour", "notre", "connaissance",
        "analyse", "méthodes", "théorie", "pratique", "international", "bibliothèque",
    ),
    "de": (
        "die", "der", "das", "universität", "forschung", "studierende", "kurs", "programm", "und",
        "von", "mit", "neue", "lehre", "fakultät", "wissenschaft", "gemeinschaft", "projekt",
        "campus", "seminar", "labor", "für", "unsere", "wissen", "analyse", "methoden",
        "theorie", "praxis", "international", "bibliothek", "zukunft",
    ),
}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
