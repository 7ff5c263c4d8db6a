"""A deterministic, offline university website for crawl tests and benchmarks.

Run it::

    python -m tools.demo_site --port 0 --pages N --seed S [--host 127.0.0.1]
                              [--profile university|dense|simple]
                              [--latency-ms MS] [--slow-ms MS] [--robots-ms MS]
                              [--transient-share F]
                              [--transient-failures K] [--transient-reset-share F]

``--profile`` picks the site: ``university`` (the default, described below), ``dense`` (a
link-dense documentation site: hundreds of sidebar links on every page, a 14,000-link index,
fragments, ``/index.html`` aliases, query variants; see :mod:`.dense`) or ``simple`` (five links
a page, no duplicates; :mod:`.simple`).

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
``--latency-ms`` (default 0) delays every response, ``--slow-ms`` is the extra delay of slow pages,
``--robots-ms`` (default 0) that of ``/robots.txt`` (a real site's round trip: a crawler obeying
robots.txt holds its first requests that long); all use ``asyncio.sleep``.  ``GET /__stats`` returns ``{"requests": N, "paths": {path: count}}``,
counting every request except those to ``/__stats`` itself; ``POST /__stats/reset`` zeroes the
counters (add ``?transient=1`` to also re-arm the transient 503s).

Python API: ``build_site``, ``make_app``, ``serve_site``, ``serve_demo_site`` (in-process),
``start_demo_site_process`` / ``stop_demo_site_process`` (a subprocess, as the orchestrator uses)
and ``client.stats`` / ``client.reset`` (the counters, from outside).

Modules: :mod:`.model` (PageSpec, DemoSite and its queries), :mod:`.builder` (``build_site``),
:mod:`.dense` and :mod:`.simple` (the other profiles),
:mod:`.vocabulary` (word lists), :mod:`.render` (HTML, PDF and PNG bodies), :mod:`.server`
(aiohttp), :mod:`.process` (the subprocess), :mod:`.client` (``/__stats``), :mod:`.cli`.
"""

from __future__ import annotations

from tools.demo_site import client
from tools.demo_site.builder import build_site
from tools.demo_site.cli import main
from tools.demo_site.model import (
    DEFAULT_SLOW_MS,
    EXTERNAL_HOST,
    MAX_DEPTH,
    ROBOTS_DISALLOWED_PREFIX,
    DemoSite,
    PageKind,
    PageSpec,
)
from tools.demo_site.process import (
    DemoSiteStartError,
    start_demo_site_process,
    stop_demo_site_process,
)
from tools.demo_site.server import make_app, serve_demo_site, serve_site

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
    "client",
    "main",
    "make_app",
    "serve_demo_site",
    "serve_site",
    "start_demo_site_process",
    "stop_demo_site_process",
]
