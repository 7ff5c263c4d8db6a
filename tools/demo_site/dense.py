"""``build_dense_site(pages, seed)``: a link-dense documentation site, as real ones are.

Where the default site is kind to a crawler (a few links a page, each URL spelled once), this
one is shaped like a Sphinx or MkDocs site:

* a sidebar on every page links the home page, every section index and every topic page (for
  530 pages, ~145 links), and a footer links the static pages, every section's
  ``index.html``, five ``/search/?q=...`` queries and an external site;
* ``/genindex/`` links ``GENINDEX_ANCHORS`` fragments of every page (``/x/#term-3``; up to
  ``GENINDEX_MAX_LINKS`` links) and ``/sitemap/`` every page;
* each page links its parent, children, siblings, previous and next pages and random pages
  elsewhere, some with ``#fragments``, some twice, one in ten with a ``?highlight=`` variant;
  its headings link themselves (``#overview``);
* ``/`` and ``/index.html``, ``/x/`` and ``/x/index.html`` are different URLs serving the same
  page; links are spelled root-relative, relative (``../../x/``) or absolute (see
  :func:`tools.demo_site.render.render_dense_html`);
* sections are trees several levels deep (``/guide/topic/sub/leaf/``);
* about 1% each of broken links (404), redirects (301 to a page) and ``/private/`` pages
  (disallowed by robots.txt), and a link to an external host on every page.

For 530 pages a crawl fetches ~620 URLs and drops ~100,000 duplicate requests (most of them
fragments and links already seen).  No slow or transient pages: the mode is for measuring.
``pages`` counts the documents (``DemoSite.html_pages()``); their aliases and query variants
are extra URLs, listed by ``DemoSite.expected_ok_urls``.
"""

from __future__ import annotations

import math
import random
from types import MappingProxyType
from typing import Final

from tools.demo_site.model import (
    EXTERNAL_HOST,
    ROBOTS_DISALLOWED_PREFIX,
    DemoSite,
    PageKind,
    PageSpec,
)
from tools.demo_site.render import slug
from tools.demo_site.vocabulary import (
    DOC_HEADINGS,
    DOC_NOUNS,
    DOC_PROJECTS,
    DOC_SEARCH_TERMS,
    DOC_SECTIONS,
    DOC_STATIC_PAGES,
    DOC_VERBS,
    PRIVATE_DOCS,
)

__all__ = ["GENINDEX_ANCHORS", "GENINDEX_MAX_LINKS", "build_dense_site", "headings_of"]

GENINDEX_ANCHORS: Final = 26
"""Index entries per page in ``/genindex/`` (each a fragment of the page)."""
GENINDEX_MAX_LINKS: Final = 14_000
_TOPIC_SHARE: Final = 0.2
"""Share of a section's pages that are topics (in every page's sidebar); the rest nest below."""
_CHILDREN: Final = 2
"""Pages below each non-topic parent: a binary tree, so big sections get deep."""
_CROSS_LINKS: Final = (10, 20)
_SPECIAL_SHARE: Final = 0.01


def headings_of(path: str) -> tuple[str, ...]:
    """The ``id`` of each ``<h2>`` of page ``path`` (their headerlinks are ``path#id``)."""
    rng = random.Random(f"headings:{path}")
    return tuple(slug(h) for h in rng.sample(DOC_HEADINGS, rng.randint(3, 6)))


def build_dense_site(pages: int, seed: int) -> DemoSite:
    """Specify a link-dense documentation site of ``pages`` documents (see the module)."""
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages}")
    return _DenseBuilder(pages, seed).build()


class _DenseBuilder:
    def __init__(self, pages: int, seed: int) -> None:
        self.n = pages
        self.seed = seed
        self.rng = random.Random(seed)
        self.specs: dict[str, PageSpec] = {}
        self.links: dict[str, list[str]] = {}
        self.broken: list[str] = []

    def build(self) -> DemoSite:
        rng = self.rng
        project = rng.choice(DOC_PROJECTS)
        rest = self.n - 1
        sections = DOC_SECTIONS[: min(len(DOC_SECTIONS), max(1, self.n // 50), rest)]
        rest -= len(sections)
        statics = DOC_STATIC_PAGES[: max(0, min(len(DOC_STATIC_PAGES), rest))]
        rest -= len(statics)

        self._page("/", f"{project} documentation", "")
        for name, title in sections:
            self._page(f"/{name}/", title, name)
        for path, title in statics:
            self._page(path, title, "static")
        items: dict[str, list[str]] = {name: [] for name, _ in sections}
        for k in range(max(0, rest)):
            items[sections[k % len(sections)][0]].append("")
        topics: list[str] = []
        for name, _ in sections:
            topics += self._section(name, items[name])
        documents = [p for p in self.specs if p != "/"]

        # Each page's own links: place in the tree, neighbours, cross-links, self-anchors.
        for name, _ in sections:
            self.links[f"/{name}/"] += [p for p in self.specs if p.startswith(f"/{name}/")][1:13]
        for path in documents:
            self._cross_link(path, documents)
        self._specials(documents)
        if "/genindex/" in self.specs:
            anchors = min(GENINDEX_ANCHORS, max(1, GENINDEX_MAX_LINKS // max(1, len(documents))))
            self.links["/genindex/"] = [
                f"{path}#term-{k}" for path in ["/", *documents] for k in range(1, anchors + 1)
            ]
        if "/sitemap/" in self.specs:
            self.links["/sitemap/"] = ["/", *documents]
        if "/search/" in self.specs:
            self.links["/search/"] = [f"/search/?q={term}" for term in DOC_SEARCH_TERMS]

        aliases = ["/index.html", *(f"/{name}/index.html" for name, _ in sections)]
        for alias in aliases:
            canonical = alias.removesuffix("index.html")
            self.specs[alias] = PageSpec(alias, PageKind.HTML, "", alias_of=canonical)
        nav = ("/", *(f"/{name}/" for name, _ in sections), *topics)
        footer = (
            *aliases,
            *(path for path, _ in statics),
            *(f"/search/?q={term}" for term in DOC_SEARCH_TERMS[:5] if statics),
            f"https://{EXTERNAL_HOST}/community",
        )
        for path, links in self.links.items():
            spec = self.specs[path]
            self.specs[path] = PageSpec(
                path, spec.kind, spec.title, spec.section, links=tuple(links), private=spec.private
            )
        return DemoSite(
            page_count=self.n,
            seed=self.seed,
            university=project,
            pages=MappingProxyType(self.specs),
            nav=nav,
            footer=footer,
            broken_paths=tuple(self.broken),
            external_urls=(f"https://{EXTERNAL_HOST}/community",),
            profile="dense",
        )

    def _page(self, path: str, title: str, section: str, *, private: bool = False) -> None:
        self.specs[path] = PageSpec(path, PageKind.HTML, title, section, private=private)
        self.links[path] = [f"{path}#{h}" for h in headings_of(path)]

    def _section(self, name: str, slots: list[str]) -> list[str]:
        """Lay out a section's pages as a tree; return its topics (the sidebar's entries)."""
        rng = self.rng
        count = len(slots)
        n_topics = min(count, max(1, math.ceil(count * _TOPIC_SHARE)))
        paths: list[str] = []
        parents: list[str] = []
        for j in range(count):
            title = f"{rng.choice(DOC_VERBS)} {rng.choice(DOC_NOUNS)}"
            parent = f"/{name}/" if j < n_topics else paths[(j - n_topics) // _CHILDREN]
            path = f"{parent}{slug(title)}-{j + 1}/"
            paths.append(path)
            parents.append(parent)
            self._page(path, title, name)
        for j, path in enumerate(paths):
            first = n_topics + j * _CHILDREN
            children = paths[first : first + _CHILDREN]
            siblings = paths[max(0, j - 4) : j + 5]
            self.links[path] += [parents[j], *children, *siblings]
            if j + 1 < count:
                self.links[path].append(paths[j + 1])
        return paths[:n_topics]

    def _cross_link(self, path: str, documents: list[str]) -> None:
        rng = self.rng
        picked = rng.sample(documents, min(len(documents), rng.randint(*_CROSS_LINKS)))
        links = self.links[path]
        for target in picked:
            roll = rng.random()
            if roll < 0.25:
                links.append(f"{target}#{rng.choice(headings_of(target))}")
            else:
                links.append(target)
        links += picked[: rng.randint(2, 4)]  # linked twice, as long pages do
        if picked and rng.random() < 0.1:
            word = rng.choice(DOC_SEARCH_TERMS)
            links.append(f"{picked[0]}?highlight={word}")

    def _specials(self, documents: list[str]) -> None:
        rng = self.rng
        count = max(1, round(self.n * _SPECIAL_SHARE))
        hosts = documents or ["/"]
        for k in range(count):
            host = rng.choice(hosts)
            section = host.split("/")[1] or "docs"
            broken = f"/{section}/removed-page-{k + 1}/"
            self.broken.append(broken)
            self.links[rng.choice(hosts)].append(broken)

            target = rng.choice(hosts)
            moved = f"/moved/{k + 1}/"
            self.specs[moved] = PageSpec(
                moved, PageKind.REDIRECT, "", redirect_to=target, redirect_status=301
            )
            self.links[rng.choice(hosts)].append(moved)

            private = f"{ROBOTS_DISALLOWED_PREFIX}{slug(rng.choice(PRIVATE_DOCS))}-{k + 1}/"
            self._page(private, f"Maintainers: {rng.choice(PRIVATE_DOCS)}", "private", private=True)
            self.links[rng.choice(hosts)].append(private)
