"""The demo site's load options: how many pages fail, how often, and how (503 or reset)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tools.demo_site import build_site, serve_site

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_defaults_give_the_same_site_as_before_and_shares_scale() -> None:
    default, explicit = build_site(1000, 5), build_site(1000, 5, transient_share=0.02)
    assert default.pages == explicit.pages
    assert len(default.transient_paths()) == 20
    bigger = build_site(1000, 5, transient_share=0.05, transient_failures=3)
    assert len(bigger.transient_paths()) == 50
    assert {bigger.pages[p].transient_failures for p in bigger.transient_paths()} == {3}
    # The same public pages (the special cases are drawn after the flags, so they differ).
    assert {p.path for p in bigger.html_pages()} == {p.path for p in default.html_pages()}


@pytest.mark.parametrize(
    "kwargs",
    [{"transient_share": 0.6}, {"transient_failures": 0}, {"transient_reset_share": 1.5}],
)
def test_bad_values_are_refused_naming_them(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        build_site(100, 1, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_transient_pages_fail_k_times_with_503_or_a_reset_then_succeed() -> None:
    site = build_site(400, 3, transient_share=0.05, transient_failures=2, transient_reset_share=0.5)
    resets = [p for p in site.transient_paths() if site.pages[p].transient_reset]
    answers = [p for p in site.transient_paths() if not site.pages[p].transient_reset]
    assert resets and answers
    async with serve_site(site) as base, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(4):
            async with session.get(base + answers[0]) as response:
                statuses.append(response.status)
        assert statuses == [503, 503, 200, 200]
        # aiohttp may resend a request whose connection was reset once by itself, so the
        # client sees one or two errors; the site's own count is the truth.
        errors = 0
        for _ in range(4):
            try:
                async with session.get(base + resets[0]) as response:
                    assert response.status == 200
                    break
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                errors += 1
        assert errors >= 1
        async with session.get(base + "/__stats") as response:
            paths = (await response.json())["paths"]
        assert paths[answers[0]] == 4
        assert paths[resets[0]] == 3  # two resets, then 200


def test_command_line_refuses_a_share_out_of_range() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo_site", "--transient-share", "0.9"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--transient-share: must be between 0 and 0.5, got 0.9" in result.stderr
