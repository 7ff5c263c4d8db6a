"""Breadth-first means breadth-first (issue 14 item 5).

Discovery on a 1,500-page demo site with a ``DEPTH_LIMIT`` that cuts it, 32 requests in flight,
run several times: every recorded depth is the page's shortest link distance from the start
URL, and the pages found are exactly the breadth-first set under the limit, in every run.
With ``DEPTH_PRIORITY`` and FIFO queues alone (Scrapy's advice for breadth-first) both differ
from run to run; ``common.scrapy.levels.BreadthFirstQueue`` makes them exact.
"""

from __future__ import annotations

import json
import subprocess
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._demo_site import serving_demo_site
from tools.demo_site import DemoSite, PageKind, build_site
from tools.testing.crawl import DISCOVERY_OUTPUT, REPO_ROOT, crawl_command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PAGES, SEED = 1500, 5
DEPTH_LIMIT = 4
RUNS = 3


def bfs_depths(site: DemoSite, limit: int) -> dict[str, int]:
    """Shortest depth of every path discovery records: links and redirects are one hop each
    (discovery follows a redirect's target as a new request), robots.txt-forbidden paths are
    never requested, and only pages that answer 200 HTML have their links followed."""
    depths = {"/": 0}
    queue = deque(["/"])
    while queue:
        path = queue.popleft()
        spec = site.pages.get(path.partition("?")[0])
        if spec is None or depths[path] >= limit:
            continue
        if spec.kind is PageKind.REDIRECT:
            targets: tuple[str, ...] = (spec.redirect_to,)
        elif spec.kind is PageKind.HTML:
            targets = site.links_of(spec.path)
        else:
            continue
        for link in targets:
            target = link.partition("#")[0]
            if not target.startswith("/") or target in depths:
                continue
            if target.startswith(site.robots_disallowed_prefix):
                continue
            depths[target] = depths[path] + 1
            queue.append(target)
    return depths


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving_demo_site(PAGES, SEED) as url:
        yield url


def discover(base_url: str, data_dir: Path, **settings: str) -> dict[str, int]:
    command = crawl_command(
        "discovery",
        data_dir,
        start_url=base_url + "/",
        settings={"DEPTH_LIMIT": str(DEPTH_LIMIT), "CONCURRENT_REQUESTS": "32", **settings},
    )
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (data_dir / DISCOVERY_OUTPUT).read_text().splitlines()]
    return {row["url"].removeprefix(base_url): row["depth"] for row in rows}


def test_the_site_is_cut_by_the_limit() -> None:
    site = build_site(PAGES, SEED)
    full = bfs_depths(site, 99)
    assert max(full.values()) > DEPTH_LIMIT, "the limit must cut the crawl for this test"
    assert len(bfs_depths(site, DEPTH_LIMIT)) < len(full)


def test_depths_and_pages_are_exactly_breadth_first_in_every_run(
    base_url: str, tmp_path: Path
) -> None:
    expected = bfs_depths(build_site(PAGES, SEED), DEPTH_LIMIT)
    for run in range(RUNS):
        found = discover(base_url, tmp_path / f"run{run}")
        wrong = {p: (d, expected.get(p)) for p, d in found.items() if expected.get(p) != d}
        assert not wrong, (
            f"run {run}: {len(wrong)} pages at a wrong depth: {sorted(wrong.items())[:10]}"
        )
        missing = sorted(set(expected) - set(found))
        assert not missing, (
            f"run {run}: {len(missing)} pages of the BFS set missing: {missing[:10]}"
        )
