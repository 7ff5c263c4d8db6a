"""The Redis add-on's switch of the project's settings: the local checkpoint's middleware and
pipeline taken out by whichever path names them, with no warning from Scrapy."""

from __future__ import annotations

import logging

import pytest
from scrapy.settings import Settings

from common.scrapy.middleware import CheckpointMiddleware
from common.scrapy.pipeline import CheckpointPipeline
from common.scrapy.redis_addon import RedisFrontierAddon


def _switched(**overrides: object) -> Settings:
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.setdict({"CHECKPOINT_REDIS_URL": "redis://127.0.0.1:9/0", **overrides}, "project")
    RedisFrontierAddon().update_settings(settings)
    return settings


def _enabled(settings: Settings, name: str) -> set[str]:
    built = settings.get_component_priority_dict_with_base(name)
    return {str(key) for key, order in built.items() if order is not None}


@pytest.mark.parametrize(
    "middleware",
    [
        "common.checkpoint_middleware.CheckpointMiddleware",  # the project's (seed) path
        "common.scrapy.middleware.CheckpointMiddleware",
        CheckpointMiddleware,
    ],
)
def test_the_local_checkpoint_is_taken_out_without_a_warning(
    middleware: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _switched(
        DOWNLOADER_MIDDLEWARES={middleware: 100},
        ITEM_PIPELINES={"common.scrapy_pipeline.CheckpointPipeline": 900},
    )
    with caplog.at_level(logging.WARNING, logger="scrapy.settings"):
        downloader = _enabled(settings, "DOWNLOADER_MIDDLEWARES")
        pipelines = _enabled(settings, "ITEM_PIPELINES")
    # Before, both aliases of each were set: "Setting DOWNLOADER_MIDDLEWARES contains multiple
    # keys that refer to the same object ... Only the last one will be kept", on every crawl.
    assert [r.getMessage() for r in caplog.records] == []
    assert not any("CheckpointMiddleware" in key for key in downloader), downloader
    assert not any("CheckpointPipeline" in key for key in pipelines), pipelines
    assert settings["SCHEDULER"] == "common.scrapy.redis_scheduler.RedisScheduler"


def test_the_projects_own_settings_switch_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = _switched()
    with caplog.at_level(logging.WARNING, logger="scrapy.settings"):
        downloader = settings.get_component_priority_dict_with_base("DOWNLOADER_MIDDLEWARES")
        pipelines = settings.get_component_priority_dict_with_base("ITEM_PIPELINES")
    assert [r.getMessage() for r in caplog.records] == []
    from scrapy.utils.misc import load_object

    assert all(
        load_object(key) is not CheckpointMiddleware or order is None
        for key, order in downloader.items()
    )
    assert all(
        load_object(key) is not CheckpointPipeline or order is None
        for key, order in pipelines.items()
    )


def test_a_misspelt_setting_refuses_a_redis_crawl_too() -> None:
    """The add-on takes out the component whose start refuses a misspelt CHECKPOINT_* name: a
    CHECKPOINT_REDIS_PREFX quietly joined the crawl of the default prefix."""
    from scrapy.utils.test import get_crawler

    from common.scrapy.redis_scheduler import RedisScheduler

    crawler = get_crawler(
        settings_dict={
            "CHECKPOINT_REDIS_URL": "redis://127.0.0.1:9/0",  # not reached: refused first
            "CHECKPOINT_REDIS_PREFX": "crawl-b",
        }
    )
    scheduler = RedisScheduler.from_crawler(crawler)
    assert scheduler.settings_error == (
        "Redis crawl: unknown checkpoint setting CHECKPOINT_REDIS_PREFX (did you mean "
        "CHECKPOINT_REDIS_PREFIX?); no component reads it (the README's settings table lists "
        "those that exist) (nothing was changed)"
    )
