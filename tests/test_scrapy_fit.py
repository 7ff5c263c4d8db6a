"""Switching the checkpoint components on changes nothing a Scrapy user relies on (issue 14).

A plain user's spider (tests/_scrapy_child.py) with the middleware, scheduler and pipeline on,
crawling the demo site in its own process under each way of running Scrapy: items without a
key reach later pipelines and feeds, with one warning; a different crawl identity in the same
directory crawls again; ``CloseSpider`` pauses; a refused start closes cleanly everywhere and
writes nothing, not even an empty feed; feeds are said to hold one run's items, and a completed
crawl run again leaves its feed as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._demo_site import serving_demo_site
from tools.demo_site import build_site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).with_name("_scrapy_child.py")
PAGES, SEED = 30, 2


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving_demo_site(PAGES, SEED) as url:
        yield url


def crawl(
    data_dir: Path, url: str, *, timeout: float = 180, **config: Any
) -> tuple[dict[str, Any], str]:
    """Run the child; its RESULT line and its log. The timeout catches a hang."""
    config = {"data_dir": str(data_dir), **config}
    config.setdefault("spider_args", {})
    config["spider_args"] = {"url": url + "/", **config["spider_args"]}
    result = subprocess.run(
        [sys.executable, str(CHILD), json.dumps(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :]), result.stderr


def state(data_dir: Path, stage: str = "user") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((data_dir / "checkpoints" / f"{stage}.json").read_text())
    return data


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "] ERROR:" in line]


def warning_lines(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if "] WARNING:" in line and text in line]


def depth_one_pages(base_url: str) -> set[str]:
    """What the spider reaches with DEPTH_LIMIT 1 (no robots.txt): / and the pages it links."""
    site = build_site(PAGES, SEED)
    return {base_url + p for p, d in site.link_depths(obey_robots=False).items() if d <= 1}


def test_keyless_items_pass_through_to_later_pipelines_and_feeds(
    base_url: str, tmp_path: Path
) -> None:
    result, log = crawl(tmp_path, base_url, spider_args={"keyless": "1"})
    stats = result["stats"]
    scraped = stats["item_scraped_count"]
    assert scraped > 1
    assert len(result["seen"]) == scraped == result["feed_lines"]
    assert all("url" not in item and "page" in item for item in result["seen"])
    assert stats["checkpoint/items_keyless"] == scraped
    # Said once, at the first: the field looked for, the item's fields, the setting to change.
    (warning,) = warning_lines(log, "items without a 'url' field")
    assert f"are not written to {tmp_path / 'output.jsonl'}" in warning
    assert "fields: 'title', 'page'. Set CHECKPOINT_ITEM_KEY" in warning
    assert "checkpoint/items_written" not in stats
    assert "item_dropped_count" not in stats and not error_lines(log)
    assert state(tmp_path)["status"] == "completed"
    assert (tmp_path / "output.jsonl").read_bytes() == b""


def test_without_an_output_file_the_pipeline_passes_items_through(
    base_url: str, tmp_path: Path
) -> None:
    result, log = crawl(tmp_path, base_url, output=False)
    stats = result["stats"]
    assert stats["item_scraped_count"] == len(result["seen"]) == result["feed_lines"] > 1
    assert stats["checkpoint/items_unwritten"] == stats["item_scraped_count"]
    assert not error_lines(log)
    saved = state(tmp_path)
    assert saved["status"] == "completed"
    assert saved["progress"]["processed_items"] == stats["item_scraped_count"]


def test_same_identity_rerun_says_so_and_another_identity_crawls_again(
    base_url: str, tmp_path: Path
) -> None:
    first, log = crawl(tmp_path, base_url)
    pages = {item["url"] for item in first["seen"]}
    assert pages == depth_one_pages(base_url)
    assert first["stats"]["finish_reason"] == "finished"
    feed = tmp_path / "feed.jsonl"
    exported = feed.read_bytes()
    assert len(exported.splitlines()) == len(first["seen"]) == first["feed_lines"]
    # A feed beside the checkpoint: said once what it holds, and which file to use instead.
    (warning,) = warning_lines(log, "Feeds (")
    assert f"Feeds ({feed}) hold this run's items only and are not exactly-once" in warning
    assert (
        f"CHECKPOINT_OUTPUT_FILE ({tmp_path / 'output.jsonl'}) is the crawl's exactly-once record"
        in warning
    )

    # Settings that change how fast or how loudly, not what, leave the identity alone; so does
    # the README's add-on line (inert without CHECKPOINT_REDIS_URL).
    again, log = crawl(
        tmp_path,
        base_url,
        settings={
            "CONCURRENT_REQUESTS": 4,
            "LOG_LEVEL": "DEBUG",
            "ADDONS": {"common.scrapy.redis_addon.RedisFrontierAddon": 0},
        },
    )
    assert again["stats"]["finish_reason"] == "checkpoint_already_completed"
    assert "already completed" in log
    assert again["seen"] == [] and "downloader/request_count" not in again["stats"]
    # The feed overwrites (-O): the completed crawl's feed is not replaced by an empty one.
    assert feed.read_bytes() == exported
    assert warning_lines(log, f"Feeds left as they were: {feed} (this run exports nothing")

    # Other spider arguments: another crawl (the stage is only the spider's name).
    other, log = crawl(tmp_path, base_url, spider_args={"close_after": "1000"})
    assert other["stats"]["finish_reason"] == "finished"
    assert {item["url"] for item in other["seen"]} == pages
    assert "configuration has changed" in log
    # Another setting that changes what is crawled: another crawl too.
    deeper, _ = crawl(
        tmp_path, base_url, spider_args={"close_after": "1000"}, settings={"DEPTH_LIMIT": 2}
    )
    assert len(deeper["seen"]) > len(pages)
    assert state(tmp_path)["status"] == "completed"
    lines = (tmp_path / "output.jsonl").read_text().splitlines()
    urls = [json.loads(x)["url"] for x in lines]
    assert len(urls) == len(set(urls))  # a redirect's target seen twice is written once
    assert set(urls) == {item["url"] for item in deeper["seen"]}
    # Another feed is another crawl too: what it exports changed.
    other_feed = tmp_path / "other-feed.jsonl"
    other_export, _ = crawl(
        tmp_path,
        base_url,
        spider_args={"close_after": "1000"},
        settings={"DEPTH_LIMIT": 2, "FEEDS": {str(other_feed): {"format": "jsonlines"}}},
    )
    assert other_export["stats"]["finish_reason"] == "finished"
    assert len(other_feed.read_text().splitlines()) == len(other_export["seen"]) > 0


def test_close_spider_pauses_without_errors_and_the_next_run_resumes(
    base_url: str, tmp_path: Path
) -> None:
    paused, log = crawl(
        tmp_path, base_url, spider_args={"close_after": "3"}, settings={"CONCURRENT_REQUESTS": 1}
    )
    assert paused["stats"]["finish_reason"] == "my_reason"
    saved = state(tmp_path)
    assert saved["status"] == "paused"
    assert saved["error_message"] is None and saved["error_count"] == 0
    assert not error_lines(log), error_lines(log)
    done_before = {json.loads(x)["url"] for x in (tmp_path / "output.jsonl").read_text().split()}
    assert 0 < len(done_before) < len(depth_one_pages(base_url))

    # The same spider and arguments: it resumes (the close was a pause, not a new identity).
    resumed, log = crawl(
        tmp_path, base_url, spider_args={"close_after": "3"}, settings={"CONCURRENT_REQUESTS": 1}
    )
    assert "configuration has changed" not in log
    assert resumed["stats"].get("checkpoint/requests_resumed", 0) > 0
    (warning,) = warning_lines(log, "Feeds (")
    assert f"this run resumes after {len(done_before)} items, which it does not export" in warning
    # One line says what is resumed, in a crawl's terms (not "last processed index: None").
    (resuming,) = [line for line in log.splitlines() if "Resuming" in line]
    assert f"Resuming crawl user: {len(done_before)} items written before; " in resuming
    assert resuming.endswith(f"{resumed['stats']['checkpoint/requests_resumed']} to crawl again")
    again = {item["url"] for item in resumed["seen"]}
    assert not again & done_before, "a page recorded before the pause was recorded again"


@pytest.mark.parametrize("mode", ["process", "runner", "async", "crawler"])
def test_a_refused_start_closes_cleanly_under_every_runner(
    base_url: str, tmp_path: Path, mode: str
) -> None:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir(mode=0o700)
    (checkpoints / "user.json").write_text("{not json")
    result, log = crawl(tmp_path, base_url, mode=mode, timeout=120)
    stats = result["stats"]
    assert stats["finish_reason"] == "checkpoint_refused"
    assert "downloader/request_count" not in stats and result["seen"] == []
    assert (checkpoints / "user.json").read_text() == "{not json"
    assert not (tmp_path / "feed.jsonl").exists()  # not even an empty feed
    for noise in ("Traceback", "Task exception was never retrieved", "Unhandled error"):
        assert noise not in log, log[-3000:]


def test_a_changed_identity_is_refused_in_the_settings_a_scrapy_run_passes(
    base_url: str, tmp_path: Path
) -> None:
    paused, _ = crawl(
        tmp_path, base_url, spider_args={"close_after": "3"}, settings={"CONCURRENT_REQUESTS": 1}
    )
    assert paused["stats"]["finish_reason"] == "my_reason"
    feed = (tmp_path / "feed.jsonl").read_bytes()
    output = (tmp_path / "output.jsonl").read_bytes()

    refused, log = crawl(tmp_path, base_url, spider_args={"close_after": "4"})
    assert refused["stats"]["finish_reason"] == "checkpoint_refused"
    (line,) = error_lines(log)
    assert "cannot resume stage 'user': configuration has changed since checkpoint" in line
    assert line.endswith(
        "Set CHECKPOINT_FRESH=True to start the stage over, or CHECKPOINT_FORCE=True to resume "
        "it anyway"
    )
    assert (tmp_path / "feed.jsonl").read_bytes() == feed
    assert (tmp_path / "output.jsonl").read_bytes() == output


def test_a_redis_url_without_the_redis_add_on_is_refused(base_url: str, tmp_path: Path) -> None:
    """The child's settings do not enable the add-on: the crawl would be local, silently."""
    result, log = crawl(
        tmp_path,
        base_url,
        settings={
            "CHECKPOINT_REDIS_URL": "redis://127.0.0.1:9/0",
            "CHECKPOINT_REDIS_PREFIX": "shared",
        },
    )
    assert result["stats"]["finish_reason"] == "checkpoint_refused"
    assert "downloader/request_count" not in result["stats"] and result["seen"] == []
    (line,) = error_lines(log)
    assert (
        "CHECKPOINT_REDIS_URL is set, but the crawl is not on the Redis frontier: add ADDONS = "
        "{'common.scrapy.redis_addon.RedisFrontierAddon': 0} to the project's settings"
    ) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_an_output_file_another_stage_records_refuses_the_crawl_before_it_truncates(
    base_url: str, tmp_path: Path
) -> None:
    from common import EnhancedCheckpoint

    other = EnhancedCheckpoint(tmp_path / "checkpoints" / "other.json")
    other.attach_output(tmp_path / "output.jsonl")  # the child's CHECKPOINT_OUTPUT_FILE
    other.start("other", total_items=1)
    other.update(processed=1, successful=1, index=0, record={"url": "kept"})
    other.complete()
    other.close()
    result, log = crawl(tmp_path, base_url, timeout=120)
    assert result["stats"]["finish_reason"] == "checkpoint_refused"
    assert result["seen"] == []
    assert (tmp_path / "output.jsonl").read_bytes() == b'{"url":"kept"}\n'
    [line] = error_lines(log)
    assert "stage 'user' cannot write" in line and "stage 'other'" in line, line
    assert "Traceback" not in log
