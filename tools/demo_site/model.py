"""What a demo site is: its pages (``PageSpec``) and the queries tests ask of it (``DemoSite``).

A site is *specified* here and rendered on request (:mod:`.render`), so large sites build fast.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from tools.demo_site import render

__all__ = [
    "DEFAULT_SLOW_MS",
    "DEFAULT_TRANSIENT_SHARE",
    "EXTERNAL_HOST",
    "MAX_DEPTH",
    "ROBOTS_DISALLOWED_PREFIX",
    "STATS_PATH",
    "DemoSite",
    "PageKind",
    "PageSpec",
]

MAX_DEPTH: Final = 6
"""Every served or linked URL is at most this many links from ``/``."""
ROBOTS_DISALLOWED_PREFIX: Final = "/private/"
EXTERNAL_HOST: Final = "partner.example.invalid"
DEFAULT_SLOW_MS: Final = 300
DEFAULT_TRANSIENT_SHARE: Final = 0.02
STATS_PATH: Final = "/__stats"


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
    alias_of: str = ""
    """Another spelling of page ``alias_of`` (``/x/index.html`` for ``/x/``): served with its body."""

    @property
    def is_public_html(self) -> bool:
        """True for the pages counted in ``DemoSite.page_count``."""
        return self.kind is PageKind.HTML and not self.private and not self.alias_of


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
    profile: str = "university"
    """``university`` (the default site) or ``dense`` (a link-dense documentation site)."""

    def html_pages(self) -> list[PageSpec]:
        """The ``page_count`` public HTML pages (transient and slow ones included)."""
        return [spec for spec in self.pages.values() if spec.is_public_html]

    def expected_ok_urls(self, base_url: str, *, include_private: bool = False) -> list[str]:
        """Absolute URLs of the pages a full crawl from ``/`` finds answering 200 with HTML.

        ``include_private`` adds the ``/private/`` pages a crawler ignoring robots.txt also finds.
        """
        base = base_url.rstrip("/")
        if self.profile != "university":
            # Aliases and query-string variants are URLs of their own: the crawl fetches them.
            depths = self.link_depths(obey_robots=not include_private)
            return [base + url for url in depths if self._is_html_url(url, include_private)]
        return [
            base + spec.path
            for spec in self.pages.values()
            if spec.kind is PageKind.HTML and (include_private or not spec.private)
        ]

    def _is_html_url(self, url: str, include_private: bool) -> bool:
        spec = self.pages.get(url.partition("?")[0])
        return (
            spec is not None
            and spec.kind is PageKind.HTML
            and (include_private or not spec.private)
        )

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
        if spec.alias_of:
            spec = self.pages[spec.alias_of]
        return tuple(dict.fromkeys((*self.nav, *spec.links, *spec.extra_links, *self.footer)))

    def link_depths(self, *, obey_robots: bool = True) -> dict[str, int]:
        """Breadth-first link distance from ``/`` of every internal path a crawler would request.

        Redirect targets get the depth of the redirect, as Scrapy counts them.  Broken paths are
        included; external URLs are not.  Keys are paths with their query string, without
        fragments (the URLs a crawler fetches).
        """
        depths = {"/": 0}
        queue = deque(["/"])
        while queue:
            current = queue.popleft()
            spec = self.pages.get(current.partition("?")[0])
            if spec is None:
                continue
            if spec.kind is PageKind.REDIRECT:
                targets: tuple[str, ...] = (spec.redirect_to,)
                next_depth = depths[current]
            elif spec.kind is PageKind.HTML:
                targets = self.links_of(spec.path)
                next_depth = depths[current] + 1
            else:
                continue
            for link in targets:
                target = link.partition("#")[0]
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
        return render.description(self, spec)

    def render_html(self, path: str, base_url: str) -> str:
        """The HTML body of page ``path`` when served at ``base_url`` (deterministic)."""
        return render.render_html(self, path, base_url)
