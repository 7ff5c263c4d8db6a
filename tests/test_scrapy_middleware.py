"""Unit tests of the Scrapy integration, built with ``scrapy.utils.test.get_crawler``.

No reactor and no network: the middleware hooks, the pipeline and the crawl runtime are called
directly, the way Scrapy's engine calls them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scrapy import Request, Spider
from scrapy.core.scheduler import Scheduler
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Response
from scrapy.utils.request import request_from_dict
from scrapy.utils.test import get_crawler

from common.errors import CheckpointError
from common.scrapy.known_settings import unknown_settings
from common.scrapy.middleware import CheckpointMiddleware
from common.scrapy.pipeline import CheckpointPipeline
from common.scrapy.runtime import (
    OUTCOME_META,
    SEQ_META,
    CrawlCheckpoint,
    from_json_safe,
    to_json_safe,
)
from common.scrapy.scheduler import CheckpointScheduler
from common.status import CheckpointStatus


class UnitSpider(Spider):
    name = "unit"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        yield from ()

    def on_error(self, failure: Any) -> Iterator[Any]:
        yield from ()


def make_crawler(tmp_path: Path, **settings: Any) -> Crawler:
    merged = {
        "CHECKPOINT_ENABLED": True,
        "CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "CHECKPOINT_STAGE_NAME": "unit_stage",
        **settings,
    }
    return get_crawler(UnitSpider, merged)


def stats_of(crawler: Crawler) -> dict[str, Any]:
    assert crawler.stats is not None
    return crawler.stats.get_stats()


def saved_state(tmp_path: Path, stage: str = "unit_stage") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "checkpoints" / f"{stage}.json").read_text())
    return data


# Switching on and off -------------------------------------------------------------------------


@pytest.mark.parametrize("component", [CheckpointMiddleware, CheckpointPipeline])
@pytest.mark.parametrize("settings", [{}, {"CHECKPOINT_ENABLED": False}])
def test_not_configured_when_checkpointing_is_off(component: Any, settings: dict[str, Any]) -> None:
    crawler = get_crawler(UnitSpider, settings)
    with pytest.raises(NotConfigured):
        component.from_crawler(crawler)


@pytest.mark.parametrize("component", [CheckpointMiddleware, CheckpointPipeline])
def test_a_misspelt_switch_is_named_where_scrapy_says_the_component_is_off(
    component: Any,
) -> None:
    crawler = get_crawler(UnitSpider, {"CHECKPOINT_ENABLE": True})
    with pytest.raises(NotConfigured) as raised:
        component.from_crawler(crawler)
    assert str(raised.value) == (
        "CHECKPOINT_ENABLED is off (unknown checkpoint setting CHECKPOINT_ENABLE (did you mean "
        "CHECKPOINT_ENABLED?))"
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"CHECKPOINT_FRESHH": True}, "CHECKPOINT_FRESHH (did you mean CHECKPOINT_FRESH?)"),
        (
            {"CHECKPOINT_OUTPUT": "out.jsonl", "CHECKPOINT_REDIS_PREFX": "b"},
            "settings CHECKPOINT_OUTPUT (did you mean CHECKPOINT_OUTPUT_FILE?), "
            "CHECKPOINT_REDIS_PREFX (did you mean CHECKPOINT_REDIS_PREFIX?)",
        ),
    ],
    ids=["fresh", "two"],
)
def test_a_misspelt_setting_refuses_the_start_before_anything_is_written(
    tmp_path: Path, settings: dict[str, Any], named: str
) -> None:
    """Scrapy ignores a setting nobody reads: CHECKPOINT_FRESHH would have resumed."""
    runtime = CrawlCheckpoint.for_crawler(make_crawler(tmp_path, **settings))
    with pytest.raises(CheckpointError) as raised:
        runtime.open(UnitSpider())
    message = str(raised.value)
    assert message.startswith("stage 'unit_stage': unknown checkpoint ")
    assert named in message and message.endswith("(nothing was changed)")
    assert list(tmp_path.iterdir()) == []


def test_a_projects_own_checkpoint_setting_is_named_in_a_warning_not_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Scrapy loads every upper-case name of a project's settings.py: a constant the project
    builds CHECKPOINT_DIR from, or its own extension's setting, is close to no setting of ours
    and must not stop the crawl (a near miss beside it still would)."""
    own = {"CHECKPOINT_ROOT": str(tmp_path), "CHECKPOINT_NOTIFY_WEBHOOK": "https://x.invalid/"}
    runtime = CrawlCheckpoint.for_crawler(make_crawler(tmp_path, **own))
    with caplog.at_level(logging.WARNING):
        runtime.open(UnitSpider())
    runtime.close()
    warnings = [
        r.getMessage() for r in caplog.records if "no checkpoint component" in r.getMessage()
    ]
    assert warnings == [
        "CHECKPOINT_NOTIFY_WEBHOOK, CHECKPOINT_ROOT: no checkpoint component reads them (close "
        "to none of their settings): ignored; the README's settings table lists those that exist"
    ]


def test_every_setting_the_readme_lists_is_known() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `CHECKPOINT_")]
    listed = {name for row in rows for name in re.findall(r"`(CHECKPOINT_[A-Z_]+)`", row)}
    assert listed and unknown_settings(listed) is None


def test_from_crawler_when_enabled_shares_one_runtime(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path)
    middleware = CheckpointMiddleware.from_crawler(crawler)
    pipeline = CheckpointPipeline.from_crawler(crawler)
    assert isinstance(middleware, CheckpointMiddleware)
    assert isinstance(pipeline, CheckpointPipeline)
    assert middleware.runtime is pipeline.runtime is CrawlCheckpoint.for_crawler(crawler)
    assert middleware.runtime.enabled
    assert middleware.runtime.directory == tmp_path / "checkpoints"
    # A different crawler gets its own runtime.
    assert CrawlCheckpoint.for_crawler(make_crawler(tmp_path)) is not middleware.runtime


def test_settings_reach_the_runtime(tmp_path: Path) -> None:
    crawler = make_crawler(
        tmp_path,
        CHECKPOINT_AUTO_SAVE_INTERVAL=7,
        CHECKPOINT_SAVE_EVERY_SECONDS=0.5,
        CHECKPOINT_FORCE=True,
        CHECKPOINT_FRESH=True,
    )
    runtime = CheckpointMiddleware.from_crawler(crawler).runtime
    assert runtime.auto_save_interval == 7
    assert runtime.save_every_seconds == 0.5
    assert runtime.force and runtime.fresh
    assert runtime.stage_name(UnitSpider()) == "unit_stage"
    plain = get_crawler(UnitSpider, {"CHECKPOINT_ENABLED": True})
    assert CrawlCheckpoint.for_crawler(plain).stage_name(UnitSpider()) == "unit"


# Outcomes of the downloader hooks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "stat"),
    [
        (200, "ok", "checkpoint/responses_ok"),
        (301, "ok", "checkpoint/responses_ok"),
        (404, "error_status", "checkpoint/responses_error_status"),
        (500, "error_status", "checkpoint/responses_error_status"),
    ],
)
def test_process_response_sets_outcome_and_stats(
    tmp_path: Path, status: int, outcome: str, stat: str
) -> None:
    crawler = make_crawler(tmp_path)
    middleware = CheckpointMiddleware.from_crawler(crawler)
    request = Request("http://site.test/a")
    assert middleware.process_request(request) is None
    response = Response(request.url, status=status, request=request)
    assert middleware.process_response(request, response) is response
    assert request.meta[OUTCOME_META] == outcome
    stats = stats_of(crawler)
    assert stats["checkpoint/requests"] == 1
    assert stats[stat] == 1


@pytest.mark.parametrize(
    ("exception", "outcome", "stat"),
    [
        (IgnoreRequest("robots.txt"), "skipped", "checkpoint/requests_skipped"),
        (TimeoutError("too slow"), "failed", "checkpoint/requests_failed"),
        (ConnectionRefusedError("refused"), "failed", "checkpoint/requests_failed"),
    ],
)
def test_process_exception_sets_outcome_and_stats(
    tmp_path: Path, exception: Exception, outcome: str, stat: str
) -> None:
    crawler = make_crawler(tmp_path)
    middleware = CheckpointMiddleware.from_crawler(crawler)
    request = Request("http://site.test/b")
    assert middleware.process_exception(request, exception) is None  # let Scrapy go on
    assert request.meta[OUTCOME_META] == outcome
    assert stats_of(crawler)[stat] == 1


def test_middleware_alone_tracks_counts_in_the_checkpoint(tmp_path: Path) -> None:
    """Without the scheduler (no frontier), each outcome is one update of the checkpoint."""
    crawler = make_crawler(tmp_path)
    middleware = CheckpointMiddleware.from_crawler(crawler)
    runtime = middleware.runtime
    assert not runtime.frontier_enabled
    runtime.open(UnitSpider())
    try:
        ok = Request("http://site.test/ok")
        middleware.process_response(ok, HtmlResponse(ok.url, body=b"<html></html>", request=ok))
        bad = Request("http://site.test/missing")
        middleware.process_response(bad, Response(bad.url, status=404, request=bad))
        middleware.process_exception(Request("http://site.test/p"), IgnoreRequest())
        middleware.process_exception(Request("http://site.test/t"), TimeoutError())
        assert runtime.checkpoint is not None
        progress = runtime.checkpoint.state.progress
        assert (progress.successful_items, progress.failed_items, progress.skipped_items) == (
            1,
            2,
            1,
        )
        runtime.settle("finished")
    finally:
        runtime.close()
    state = saved_state(tmp_path)
    assert state["status"] == "completed"
    assert state["progress"]["processed_items"] == 4
    assert state["metadata"]["spider_name"] == "unit"


# Close reasons and crash detection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("finished", "completed"),
        ("shutdown", "paused"),
        ("cancelled", "paused"),
        ("closespider_itemcount", "paused"),
        ("closespider_timeout", "paused"),
        ("closespider_errorcount", "paused"),
        ("memusage_exceeded", "paused"),
        ("my_reason", "paused"),  # raise CloseSpider("my_reason") in a callback
        ("start_error", "failed"),
        ("input_error", "failed"),
    ],
)
def test_close_reason_sets_the_final_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, reason: str, status: str
) -> None:
    """CloseSpider reasons and limits pause (resumable, no ERROR record); errors fail."""
    crawler = make_crawler(tmp_path)
    runtime = CheckpointMiddleware.from_crawler(crawler).runtime
    runtime.open(UnitSpider())
    with caplog.at_level("INFO"):
        runtime.settle(reason)
        runtime.close()
    state = saved_state(tmp_path)
    assert state["status"] == status
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    if status == "failed":
        assert reason in state["error_message"]
        assert errors
    else:
        assert state["error_message"] is None and state["error_count"] == 0
        assert not errors, [r.getMessage() for r in errors]


def test_crash_is_detected_and_resumed_on_restart(tmp_path: Path) -> None:
    first = CheckpointMiddleware.from_crawler(make_crawler(tmp_path)).runtime
    first.open(UnitSpider())
    assert first.checkpoint is not None
    first.checkpoint.save(force=True)
    first.close()  # no settle(): the process "died" with the stage running
    assert saved_state(tmp_path)["status"] == "running"

    second = CheckpointMiddleware.from_crawler(make_crawler(tmp_path)).runtime
    second.open(UnitSpider())
    try:
        assert second.checkpoint is not None
        assert second.checkpoint.recovered_from_crash
        assert second.checkpoint.status is CheckpointStatus.RUNNING
        assert second.has_work
    finally:
        second.settle("finished")
        second.close()
    state = saved_state(tmp_path)
    assert state["status"] == "completed"
    assert state["recoveries"] == 1


def test_completed_stage_has_no_work_on_the_next_run(tmp_path: Path) -> None:
    first = CheckpointMiddleware.from_crawler(make_crawler(tmp_path)).runtime
    first.open(UnitSpider())
    first.settle("finished")
    first.close()
    second = CheckpointMiddleware.from_crawler(make_crawler(tmp_path)).runtime
    second.open(UnitSpider())
    try:
        assert not second.has_work
    finally:
        second.settle("finished")
        second.close()
    assert saved_state(tmp_path)["status"] == "completed"


# The pipeline -------------------------------------------------------------------------------------


def test_pipeline_writes_each_url_once(tmp_path: Path) -> None:
    output = tmp_path / "out" / "records.jsonl"
    crawler = make_crawler(tmp_path, CHECKPOINT_OUTPUT_FILE=str(output))
    pipeline = CheckpointPipeline.from_crawler(crawler)
    runtime = pipeline.runtime
    runtime.open(UnitSpider())
    try:
        first = {"url": "http://site.test/a", "ok": True}
        assert pipeline.process_item(first) is first
        pipeline.process_item({"url": "http://site.test/a", "ok": True})  # a redone request
        pipeline.process_item({"url": "http://site.test/b", "ok": False, "error": "boom"})
        runtime.settle("finished")
    finally:
        runtime.close()
    stats = stats_of(crawler)
    assert stats["checkpoint/items_written"] == 2
    assert stats["checkpoint/items_duplicate"] == 1
    lines = output.read_text().splitlines()
    assert [json.loads(line)["url"] for line in lines] == [
        "http://site.test/a",
        "http://site.test/b",
    ]
    failed = output.with_name("records.failed.jsonl").read_text().splitlines()
    assert [json.loads(line)["url"] for line in failed] == ["http://site.test/b"]
    state = saved_state(tmp_path)
    assert (state["progress"]["successful_items"], state["progress"]["failed_items"]) == (1, 1)


def test_an_item_json_cannot_encode_passes_through_and_changes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "out" / "records.jsonl"
    crawler = make_crawler(tmp_path, CHECKPOINT_OUTPUT_FILE=str(output))
    pipeline = CheckpointPipeline.from_crawler(crawler)
    runtime = pipeline.runtime
    runtime.open(UnitSpider())
    try:
        odd = {"url": "http://site.test/a", "ok": False, "error": "boom", "tags": {"x"}}
        assert pipeline.process_item(odd) is odd
        # Its key was not marked done: the same URL's next, writable record is written.
        pipeline.process_item({"url": "http://site.test/a", "ok": True})
        runtime.settle("finished")
    finally:
        runtime.close()
    stats = stats_of(crawler)
    assert stats["checkpoint/items_unserializable"] == 1
    assert stats["checkpoint/items_written"] == 1
    assert "checkpoint/items_duplicate" not in stats
    assert [json.loads(line) for line in output.read_text().splitlines()] == [
        {"url": "http://site.test/a", "ok": True}
    ]
    assert output.with_name("records.failed.jsonl").read_bytes() == b""
    progress = saved_state(tmp_path)["progress"]
    assert (progress["processed_items"], progress["failed_items"]) == (1, 0)


# The scheduler's dupefilter bypass ------------------------------------------------------------------


@pytest.fixture
def scheduler(tmp_path: Path) -> CheckpointScheduler:
    """A CheckpointScheduler opened as Scrapy's own (no journal, no reactor needed)."""
    crawler = make_crawler(tmp_path, SCHEDULER_PRIORITY_QUEUE="scrapy.pqueues.ScrapyPriorityQueue")
    spider = UnitSpider.from_crawler(crawler)
    crawler.spider = spider
    scheduler = CheckpointScheduler.from_crawler(crawler)
    assert scheduler.runtime.enabled and scheduler.runtime.frontier_enabled
    Scheduler.open(scheduler, spider)
    return scheduler


def handed_out(scheduler: CheckpointScheduler, url: str, seq: int = 0) -> Request:
    """A journaled request the engine took from the scheduler and is downloading."""
    request = Request(url)
    assert not scheduler.df.request_seen(request)  # the dupefilter saw it when it was scheduled
    request.meta[SEQ_META] = seq  # as record_request() numbers it in the journal
    scheduler.runtime.handed_out(request)
    return request


def test_scheduler_filters_duplicates(scheduler: CheckpointScheduler) -> None:
    assert scheduler.enqueue_request(Request("http://site.test/a"))
    assert not scheduler.enqueue_request(Request("http://site.test/a"))
    assert len(scheduler) == 1


def test_scheduler_accepts_retries_and_redirects_of_requests_in_flight(
    scheduler: CheckpointScheduler,
) -> None:
    """They replace their original, so the dupefilter must not drop them."""
    assert scheduler.crawler is not None
    spider = scheduler.crawler.spider
    assert scheduler.enqueue_request(Request("http://site.test/new"))  # seen already
    original = handed_out(scheduler, "http://site.test/old")
    retry = get_retry_request(original, spider=spider, reason="503 Service Unavailable")
    assert retry is not None
    assert scheduler.enqueue_request(retry)
    redirect = RedirectMiddleware.from_crawler(scheduler.crawler).process_response(
        original,
        Response(original.url, status=301, headers={"Location": "/new"}, request=original),
    )
    assert isinstance(redirect, Request) and redirect.url == "http://site.test/new"
    assert scheduler.enqueue_request(redirect)
    assert len(scheduler) == 3


def test_scheduler_takes_nothing_once_the_stage_completed(scheduler: CheckpointScheduler) -> None:
    scheduler.runtime.has_work = False
    assert not scheduler.enqueue_request(Request("http://site.test/a"))
    assert len(scheduler) == 0


@pytest.mark.parametrize(
    "parent_meta",
    [{}, {"retry_times": 1}, {"redirect_urls": ["http://site.test/old"], "redirect_times": 1}],
    ids=["plain", "retried", "redirected"],
)
def test_children_carrying_the_parent_meta_are_still_deduplicated(
    scheduler: CheckpointScheduler, parent_meta: dict[str, Any]
) -> None:
    """``yield response.follow(link, meta=response.meta)`` copies ``checkpoint_seq``.

    Regression (fixed in b8d3a8a): any request holding that key bypassed the dupefilter, so a
    spider propagating meta crawled every page again and again (16,681 requests for a 34-path
    site in 60 s, 38 without checkpointing).
    """
    parent = handed_out(scheduler, "http://site.test/parent")
    parent.meta.update(parent_meta)
    assert scheduler.enqueue_request(Request("http://site.test/child", meta=parent.meta))
    assert not scheduler.enqueue_request(Request("http://site.test/child", meta=parent.meta))
    assert not scheduler.enqueue_request(Request("http://site.test/parent", meta=parent.meta))
    assert len(scheduler) == 1


def open_scheduler(tmp_path: Path) -> tuple[CheckpointScheduler, set[Request]]:
    """A CheckpointScheduler with its journal, opened (and resumed) as a crawl opens it.

    The engine is faked down to the set of requests in progress, which reconcile() reads.
    """
    crawler = make_crawler(tmp_path, SCHEDULER_PRIORITY_QUEUE="scrapy.pqueues.ScrapyPriorityQueue")
    spider = UnitSpider.from_crawler(crawler)
    crawler.spider = spider
    inprogress: set[Request] = set()
    crawler.engine = SimpleNamespace(_slot=SimpleNamespace(inprogress=inprogress))
    scheduler = CheckpointScheduler.from_crawler(crawler)
    Scheduler.open(scheduler, spider)
    scheduler._restore(scheduler.runtime.open(spider), spider)
    return scheduler, inprogress


def close_scheduler(scheduler: CheckpointScheduler, reason: str = "shutdown") -> None:
    runtime = scheduler.runtime
    assert runtime.checkpoint is not None
    runtime.checkpoint.save(force=True)
    runtime.settle(reason)
    runtime.close()


def test_resume_does_not_filter_redirect_targets_the_live_crawl_did_not_filter(
    tmp_path: Path,
) -> None:
    """Regression (fixed in 8f74fa9): replacements' fingerprints went into the dupefilter.

    A redirect of a journaled request bypasses the dupefilter (its target is not marked
    seen) but was journaled with its fingerprint, and a resume restored every journaled
    fingerprint: validation's own request for a redirect target was then dropped and its
    record lost (7-8 of 1,665 records in test_crawl_kill).
    """
    old, new = "http://site.test/old/page", "http://site.test/page"
    scheduler, inprogress = open_scheduler(tmp_path)
    request = Request(old)
    assert scheduler.enqueue_request(request)
    assert scheduler.next_request() is request
    inprogress.add(request)
    redirect = RedirectMiddleware.from_crawler(scheduler.crawler).process_response(
        request, Response(old, status=301, headers={"Location": new}, request=request)
    )
    assert isinstance(redirect, Request)
    assert scheduler.enqueue_request(redirect)  # a replacement: not marked seen
    close_scheduler(scheduler)  # killed here, as far as the frontier knows

    resumed, _ = open_scheduler(tmp_path)
    try:
        assert len(resumed) == 2  # the original and its redirect, both unfinished
        assert not resumed.enqueue_request(Request(old))  # scheduled before: pending again
        # The input also lists the target itself: the live crawl would have accepted it.
        assert resumed.enqueue_request(Request(new))
    finally:
        close_scheduler(resumed)


def test_reconcile_survives_a_save_triggered_by_a_skipped_request(tmp_path: Path) -> None:
    """Regression (fixed in b8d3a8a): reconcile() re-entered from the save it triggered.

    For a finished request whose outcome is ``skipped`` it calls ``checkpoint.update()``,
    which may auto-save; the save's snapshot hook calls ``reconcile()`` again, which popped the
    outer loop's remaining entries, and the outer ``pop(seq)`` raised KeyError. No minimum
    interval between saves and a save after every update, so each skipped request saves.
    """
    crawler = make_crawler(
        tmp_path, CHECKPOINT_AUTO_SAVE_INTERVAL=1, CHECKPOINT_MIN_SAVE_INTERVAL=0
    )
    spider = UnitSpider.from_crawler(crawler)
    crawler.spider = spider
    # The engine's slot as reconcile() reads it: nothing in progress any more.
    crawler.engine = SimpleNamespace(_slot=SimpleNamespace(inprogress=set()))
    runtime = CrawlCheckpoint.for_crawler(crawler)
    runtime.frontier_enabled = True
    runtime.open(spider)
    saves_inside_reconcile: list[int] = []
    try:
        assert runtime.checkpoint is not None
        runtime.checkpoint.flush()
        runtime.checkpoint.add_snapshot_hook(
            lambda: saves_inside_reconcile.append(1) if runtime._reconciling else None
        )
        for seq in range(3):  # three robots.txt-forbidden requests finished together
            request = Request(f"http://site.test/private/{seq}")
            request.meta.update({SEQ_META: seq, OUTCOME_META: "skipped"})
            runtime.handed_out(request)
        assert runtime.reconcile() == 3
        # The case the regression is about really happened: saves from inside reconcile().
        assert len(saves_inside_reconcile) >= 1
        assert runtime.checkpoint.state.progress.skipped_items == 3
        assert runtime.checkpoint.state.completion.done_count == 3
        assert runtime.reconcile() == 0
    finally:
        runtime.settle("shutdown")
        runtime.close()


# Requests as JSON ---------------------------------------------------------------------------------


def json_round_trip(value: Any) -> Any:
    return from_json_safe(json.loads(json.dumps(to_json_safe(value))))


def test_request_dict_round_trips_through_json() -> None:
    spider = UnitSpider()
    request = Request(
        "http://site.test/search?q=caf%C3%A9",
        method="POST",
        body=b"\x00\xffbinary=1&x=\xe9",
        headers={"Referer": "http://site.test/", "X-Bin": b"\xfe\x01", "Accept": ["a", "b"]},
        cookies={"session": "abc"},
        meta={
            "depth": 3,
            "token": b"\x01\x02",
            "nested": {"$b": "not base64", "k": [b"x", 1, None]},
            "$d": "a key that looks like a tag",
            "redirect_urls": ["http://site.test/old"],
        },
        cb_kwargs={"page": 2, "raw": b"\xff"},
        callback=spider.parse,
        errback=spider.on_error,
        priority=-4,
        dont_filter=True,
        flags=["resumed"],
    )
    data = request.to_dict(spider=spider)
    encoded = json.dumps(to_json_safe(data))  # plain JSON: no bytes, no pickle
    decoded = from_json_safe(json.loads(encoded))
    assert decoded == data
    rebuilt = request_from_dict(decoded, spider=spider)
    assert rebuilt.url == request.url
    assert rebuilt.method == "POST"
    assert rebuilt.body == request.body
    assert dict(rebuilt.headers) == dict(request.headers)
    assert rebuilt.meta == request.meta
    assert rebuilt.cb_kwargs == request.cb_kwargs
    assert rebuilt.cookies == request.cookies
    assert rebuilt.callback is not None and rebuilt.callback.__name__ == "parse"
    assert rebuilt.errback is not None and rebuilt.errback.__name__ == "on_error"
    assert rebuilt.callback == spider.parse
    assert (rebuilt.priority, rebuilt.dont_filter, rebuilt.flags) == (-4, True, ["resumed"])
    assert rebuilt.to_dict(spider=spider) == data


@pytest.mark.parametrize(
    "value",
    [
        b"",
        {"$b": "x"},
        {"$d": [["a", 1]]},
        {"$b": b"\x00", "$d": b"\x01"},
        {b"key": [b"v1", b"v2"]},
        {1: "int key", "s": "str key"},
        [{"$b": "QQ=="}, {"$d": []}],
        {},
        [],
    ],
)
def test_tag_lookalikes_survive(value: Any) -> None:
    assert json_round_trip(value) == value


json_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
)
keys = st.text() | st.binary() | st.sampled_from(["$b", "$d"]) | st.integers()
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_safe_round_trip_property(value: Any) -> None:
    assert json_round_trip(value) == value


# The crawl's identity ----------------------------------------------------------------------------


class ArgumentSpider(Spider):
    name = "args"

    def __init__(self, category: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.category = category
        self.start_urls = [f"http://site.test/{category}"]
        self.parser = object()  # not plain data: not part of the identity


def identity_of(settings: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    from scrapy.settings import Settings

    from common.scrapy.identity import crawl_identity

    project = Settings()
    project.setdict(settings, priority="cmdline")
    return crawl_identity(ArgumentSpider(**arguments), project)


def test_identity_is_the_spider_its_arguments_and_what_the_settings_crawl() -> None:
    base = identity_of({"DEPTH_LIMIT": 2}, category="a")
    assert base == identity_of({"DEPTH_LIMIT": "2"}, category="a")  # -s gives strings
    assert base["arguments"] == {"category": "a", "start_urls": ["http://site.test/a"]}
    assert base != identity_of({"DEPTH_LIMIT": 2}, category="b")
    assert base != identity_of({"DEPTH_LIMIT": 3}, category="a")
    assert base != identity_of(
        {"DEPTH_LIMIT": 2, "FEEDS": {Path("/tmp/x.jsonl"): {"format": "jsonlines"}}}, category="a"
    )
    # How fast, how politely, how loudly, where to: the same crawl.
    same = {
        "DEPTH_LIMIT": 2,
        "CONCURRENT_REQUESTS": 64,
        "DOWNLOAD_DELAY": 1,
        "LOG_LEVEL": "DEBUG",
        "CHECKPOINT_DIR": "/elsewhere",
        "CLOSESPIDER_ITEMCOUNT": 10,
        "USER_AGENT": "another",
    }
    assert identity_of(same, category="a") == base
    assert identity_of({**same, "CHECKPOINT_IDENTITY_IGNORE": ["DEPTH_LIMIT"]}, category="a") != (
        base
    )


def test_identity_uses_checkpoint_config_when_the_spider_defines_one() -> None:
    explicit = identity_of({"CHECKPOINT_CONFIG": {"site": "x"}}, category="a")
    assert explicit["config"] == {"site": "x"} and "arguments" not in explicit
    assert explicit == identity_of({"CHECKPOINT_CONFIG": {"site": "x"}}, category="b")


# The runtime's own signal handlers (the crawls in tests/test_scrapy_fit.py run them for real) ----


def test_the_runtime_handles_the_spider_signals_itself(tmp_path: Path) -> None:
    from pydispatch import dispatcher
    from pydispatch.saferef import BoundMethodWeakref
    from scrapy import signals

    crawler = make_crawler(tmp_path)
    runtime = CheckpointPipeline.from_crawler(crawler).runtime  # the pipeline alone is enough
    for signal, handler in (
        (signals.spider_opened, runtime.spider_opened),
        (signals.spider_closed, runtime.spider_closed),
    ):
        receivers = [
            r() if isinstance(r, BoundMethodWeakref) else r
            for r in dispatcher.getAllReceivers(crawler.signals.sender, signal)
        ]
        assert handler in receivers, signal


# A process that built crawlers and dropped them: the runtimes go with them, before exit.
_DROPPED_CRAWLERS = """
import gc, sys, weakref
from pydispatch import dispatcher
from scrapy import Spider, signals
from scrapy.utils.test import get_crawler
from common.scrapy.pipeline import CheckpointPipeline

class UnitSpider(Spider):
    name = "unit"

runtimes, senders = [], []
for n in range(3):
    crawler = get_crawler(
        UnitSpider, {"CHECKPOINT_ENABLED": True, "CHECKPOINT_DIR": sys.argv[1]}
    )
    runtimes.append(weakref.ref(CheckpointPipeline.from_crawler(crawler).runtime))
    senders.append(id(crawler))
del crawler
gc.collect()
alive = sum(r() is not None for r in runtimes)
still_connected = sum(key in dispatcher.connections for key in senders)
print(f"ALIVE {alive} CONNECTED {still_connected}")
"""


def test_a_dropped_crawler_takes_its_runtime_and_receivers_with_it(tmp_path: Path) -> None:
    """The runtime lives as long as its crawler: kept in a registry that never let go, every
    crawler stayed to interpreter exit, where pydispatch, half torn down, printed
    "Exception during saferef BoundMethodWeakref( CrawlCheckpoint.spider_closed ) ..."."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _DROPPED_CRAWLERS, str(tmp_path / "checkpoints")],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ALIVE 0 CONNECTED 0" in result.stdout, result.stdout
    for stream in (result.stdout, result.stderr):
        assert "saferef" not in stream and "Traceback" not in stream, stream[-3000:]


@pytest.mark.parametrize("case", ["refused", "completed"])
def test_spider_opened_closes_a_crawl_with_nothing_to_do(tmp_path: Path, case: str) -> None:
    import asyncio

    from scrapy.exceptions import CloseSpider

    from common.scrapy.runtime import ALREADY_COMPLETED, REFUSED

    if case == "completed":
        first = CrawlCheckpoint.for_crawler(make_crawler(tmp_path))
        first.open(UnitSpider())
        first.settle("finished")
        first.close()
    crawler = make_crawler(tmp_path)
    runtime = CrawlCheckpoint.for_crawler(crawler)
    if case == "refused":
        runtime.refused = "cannot resume stage 'unit_stage': configuration has changed"
    else:
        runtime.open(UnitSpider())  # as the scheduler does before the spider opens
    try:
        with pytest.raises(CloseSpider) as closed:
            asyncio.run(runtime.spider_opened(UnitSpider()))
        assert closed.value.reason == (REFUSED if case == "refused" else ALREADY_COMPLETED)
    finally:
        runtime.settle(closed.value.reason)
        runtime.close()
    if case == "completed":
        assert saved_state(tmp_path)["status"] == "completed"
    else:
        assert not (tmp_path / "checkpoints" / "unit_stage.json").exists()
