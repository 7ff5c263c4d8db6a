"""Shared fixtures: an injectable clock and checkpoints that are always closed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common import CheckpointError, EnhancedCheckpoint


class FakeClock:
    """A wall clock that only moves when a test moves it (epoch seconds)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


MakeCheckpoint = Callable[..., EnhancedCheckpoint]


@pytest.fixture
def make_checkpoint(checkpoint_dir: Path) -> Iterator[MakeCheckpoint]:
    """``make_checkpoint(stage="s", **options)``: an EnhancedCheckpoint closed at teardown."""
    opened: list[EnhancedCheckpoint] = []

    def make(stage: str = "stage", **options: Any) -> EnhancedCheckpoint:
        checkpoint = EnhancedCheckpoint(checkpoint_dir / f"{stage}.json", **options)
        opened.append(checkpoint)
        return checkpoint

    yield make
    for checkpoint in opened:
        with contextlib.suppress(CheckpointError):
            checkpoint.close()


def _service_or_skip(variable: str, what: str) -> str:
    """The server address in ``variable``; skip (fail under PIPELINE_REQUIRE_SERVICES) if unset."""
    import os

    value = os.environ.get(variable, "")
    if value:
        return value
    reason = f'{what} not configured: run `eval "$(.ci/services)"` to start it and set {variable}'
    if os.environ.get("PIPELINE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " (PIPELINE_REQUIRE_SERVICES=1: CI never skips these tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server_dsn() -> str:
    """DSN of the loopback PostgreSQL server started by ``.ci/services``."""
    return _service_or_skip("PIPELINE_TEST_POSTGRES_DSN", "PostgreSQL")


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one test, dropped afterwards."""
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(postgres_server_dsn)
    params["dbname"] = name
    yield make_conninfo(**params)
    with psycopg.connect(postgres_server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """URL of the loopback Redis server started by ``.ci/services``; isolate by key prefix."""
    return _service_or_skip("PIPELINE_TEST_REDIS_URL", "Redis")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "benchmark: a measurement, not a test (deselected unless selected with -m benchmark)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Measurements run only when asked for: ``-m benchmark`` (or any -m naming them)."""
    if "benchmark" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("benchmark") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
