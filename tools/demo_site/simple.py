"""``build_simple_site(pages, seed)``: the kindest site, five links a page (profile ``simple``).

Page ``/p/k/`` links its five children ``/p/5k+1/`` ... ``/p/5k+5/`` (a tree below ``/``, which
is page 0); each URL is linked once, so a crawler meets no duplicate link at all. A baseline for
the link-dense site: what a crawler costs per page when filtering costs nothing.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from tools.demo_site.model import DemoSite, PageKind, PageSpec

__all__ = ["LINKS_PER_PAGE", "build_simple_site"]

LINKS_PER_PAGE: Final = 5


def _path(k: int) -> str:
    return "/" if k == 0 else f"/p/{k}/"


def build_simple_site(pages: int, seed: int) -> DemoSite:
    """Specify a tree of ``pages`` pages, five links each (``seed`` only varies the text)."""
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages}")
    specs: dict[str, PageSpec] = {}
    for k in range(pages):
        first = k * LINKS_PER_PAGE + 1
        children = tuple(_path(c) for c in range(first, min(pages, first + LINKS_PER_PAGE)))
        specs[_path(k)] = PageSpec(_path(k), PageKind.HTML, f"Page {k}", "simple", links=children)
    return DemoSite(
        page_count=pages,
        seed=seed,
        university="Simple Site",
        pages=MappingProxyType(specs),
        nav=(),
        footer=(),
        broken_paths=(),
        external_urls=(),
        profile="simple",
    )
