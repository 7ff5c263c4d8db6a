"""The local demo site: ``python -m tools.demo_site --port 0 --pages N --seed S``.

A deterministic site (pages, links, broken links, redirects, slow pages, non-HTML files,
permanent and transient errors) so the whole pipeline runs offline; see :mod:`.site`.
"""

from __future__ import annotations

from tools.demo_site.site import (
    DEFAULT_SLOW_MS,
    EXTERNAL_HOST,
    MAX_DEPTH,
    ROBOTS_DISALLOWED_PREFIX,
    DemoSite,
    DemoSiteStartError,
    PageKind,
    PageSpec,
    build_site,
    main,
    make_app,
    serve_demo_site,
    serve_site,
    start_demo_site_process,
    stop_demo_site_process,
)

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
