"""The whole-pipeline benchmark compares like with like: with checkpointing off, the three
stages write the same records (by URL) and keep no checkpoint at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._demo_site import serving_demo_site
from tools.bench.pipeline import OnOff, StageRun, run_stages
from tools.demo_site import client


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    # 200 pages: enough for redirects onto URLs that discovery also found, which Scrapy's
    # stock dupefilter would drop from validation.
    with serving_demo_site(200, 9) as base_url:
        yield base_url + "/"


def test_off_writes_the_same_records_without_a_checkpoint(site: str, tmp_path: Path) -> None:
    client.reset(site)
    _, on = run_stages("on", site, tmp_path / "on")
    client.reset(site)
    _, off = run_stages("off", site, tmp_path / "off")

    assert all(on), "every stage wrote records"
    assert off == on
    assert list((tmp_path / "on" / "checkpoints").glob("stage*.json"))
    off_checkpoints = tmp_path / "off" / "checkpoints"
    assert not off_checkpoints.exists() or not any(off_checkpoints.iterdir())


def test_paired_ratio_is_the_median_of_each_rounds_own_ratio() -> None:
    result = OnOff()
    # Each round's runs share its load (round 2 busier); the medians of each variant would
    # give 1.10 / 1.20 = 0.92x, the rounds' own ratios are 1.10, 1.20 and 0.75.
    result.runs["on"]["s"] = [StageRun(1.0, 1.10), StageRun(4.0, 3.00), StageRun(1.0, 0.90)]
    result.runs["off"]["s"] = [StageRun(1.0, 1.00), StageRun(4.0, 2.50), StageRun(1.0, 1.20)]

    ratio, above = result.paired("s", "cpu")

    assert ratio == pytest.approx(1.10)
    assert above == 2
    assert result.paired("s", "wall") == (1.0, 0)
