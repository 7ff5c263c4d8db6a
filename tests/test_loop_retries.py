"""The lock and SQLite retry loops never hold up an async caller's event loop, nor a crawl's
reactor while its requests are in flight.

Two loops sleep 10 ms between attempts: ``StageLock.acquire`` retries ``flock`` while a reader's
probe holds the lock shared for a moment, and ``SqliteStore`` retries opening a thread's
connection while another connection sets the database up. Each attempt is a ``fcntl.flock`` or
a ``sqlite3.connect`` call, events a Python audit hook sees with the calling thread: when the
loop's thread makes neither, neither loop (nor its sleep) ran on the loop. A probe held across
the tracker's entry shows more: the loop goes on running while the acquire retries in its
worker thread, and the retry then succeeds because the loop let the probe go. A Scrapy stage
opens its checkpoint in a worker thread (deferToThread) and loads the done keys there; the
reactor thread opens only its own SQLite reader, in spider_opened, before the crawl fetches.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common import AsyncCheckpointTracker
from common.manager import UnifiedCheckpointManager
from common.stores import open_store
from tests._demo_site import serving_demo_site
from tools.checkpoint_cli.dashboard import Dashboard
from tools.testing.crawl import DISCOVERY_OUTPUT, REPO_ROOT, crawl_command

STAGE = "stage3_async_enrichment"
ATTEMPTS = {"fcntl.flock", "sqlite3.connect"}
EXCLUSIVE_TRY = fcntl.LOCK_EX | fcntl.LOCK_NB


@dataclass
class Watch:
    """What the audit hook saw while a test watched the thread ``loop_thread``."""

    loop_thread: int
    on_loop: list[str] = field(default_factory=list)
    elsewhere: Counter[str] = field(default_factory=Counter)
    #: Called (in the attempting thread) before each exclusive flock attempt off the loop.
    on_exclusive_try: Callable[[int], None] | None = None


_current: list[Watch] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _current or event not in ATTEMPTS:
        return
    watch = _current[0]
    if threading.get_ident() == watch.loop_thread:
        watch.on_loop.append(f"{event}{args!r}")
        return
    watch.elsewhere[event] += 1
    if event == "fcntl.flock" and args[1] == EXCLUSIVE_TRY and watch.on_exclusive_try:
        watch.on_exclusive_try(args[0])


sys.addaudithook(_hook)  # audit hooks cannot be removed; it acts only while a test watches


@contextmanager
def watching() -> Iterator[Watch]:
    """Record the attempts of the running loop's thread (and count the others')."""
    watch = Watch(threading.get_ident())
    _current.append(watch)
    try:
        yield watch
    finally:
        _current.clear()


def lines(count: int) -> list[str]:
    return [f"https://a.test/{n}" for n in range(count)]


async def run_stage(directory: Path, input_file: Path, output: Path, urls: list[str]) -> None:
    """A stage as stage 3 runs it: the SQLite store, a ledger, a committed output."""
    tracker = AsyncCheckpointTracker(
        directory,
        STAGE,
        input_file=input_file,
        output_file=output,
        store="sqlite",
        worker_id="w1",
    )
    async with tracker:
        assert tracker.start(total_items=len(urls))
        await tracker.register_items(urls)
        for index, url in enumerate(urls):
            if not tracker.should_skip(index):
                tracker.update(processed=1, successful=1, index=index, record={"url": url})


@pytest.mark.asyncio
async def test_a_sqlite_stage_and_the_dashboard_attempt_nothing_on_the_loop(
    tmp_path: Path,
) -> None:
    checkpoints, input_file, output = tmp_path / "cp", tmp_path / "in.txt", tmp_path / "out.jsonl"
    urls = lines(50)
    input_file.write_text("\n".join(urls) + "\n")
    manager = UnifiedCheckpointManager(checkpoints, store=open_store("sqlite", checkpoints))
    try:
        with watching() as watch:
            await run_stage(checkpoints, input_file, output, urls)
            document = await Dashboard(manager).progress()
    finally:
        manager.close()

    assert watch.on_loop == []
    # Not vacuous: the store was opened and the stage locked and unlocked, in worker threads.
    assert watch.elsewhere["sqlite3.connect"] >= 1, watch.elsewhere
    assert watch.elsewhere["fcntl.flock"] >= 2, watch.elsewhere
    assert [s["status"] for s in document["stages"]] == ["completed"], document
    assert len(output.read_text().splitlines()) == len(urls)


@pytest.mark.asyncio
async def test_the_loop_runs_while_the_stage_lock_is_retried(tmp_path: Path) -> None:
    checkpoints, input_file, output = tmp_path / "cp", tmp_path / "in.txt", tmp_path / "out.jsonl"
    urls = lines(5)
    input_file.write_text("\n".join(urls) + "\n")
    checkpoints.mkdir()
    lock_path = checkpoints / f"{STAGE}.lock"
    # A reader's probe (is_held_elsewhere) holds the lock shared: the writer's first try fails.
    probe = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    loop = asyncio.get_running_loop()
    retrying = asyncio.Event()
    probe_gone = threading.Event()
    tries: list[int] = []

    def on_exclusive_try(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") != str(lock_path):
            return
        tries.append(fd)
        if len(tries) == 2:  # the first try failed and the acquire slept: it is retrying
            loop.call_soon_threadsafe(retrying.set)
            # Held here until the loop, free while this thread retries, lets the probe go.
            assert probe_gone.wait(60), "the loop did not run while the lock was retried"

    async def let_the_probe_go() -> None:
        await retrying.wait()
        os.close(probe)  # the last reference to the open file: its shared lock goes with it
        probe_gone.set()

    with watching() as watch:
        watch.on_exclusive_try = on_exclusive_try
        releaser = asyncio.create_task(let_the_probe_go())
        try:
            await run_stage(checkpoints, input_file, output, urls)
            assert len(tries) == 2, tries  # failed once, then the retry got it
            await asyncio.wait_for(releaser, 60)
        finally:
            releaser.cancel()  # a failed assertion above must not leave it waiting

    assert watch.on_loop == []
    assert len(output.read_text().splitlines()) == len(urls)


# `scrapy crawl` with the same audit hook: the reactor runs on the main thread, and its first
# socket.connect (robots.txt) is the crawl starting to fetch.
WATCHED_CRAWL = """
import atexit, json, sys, threading
reactor_thread = threading.get_ident()
seen = {"before_fetching": [], "while_fetching": [], "elsewhere": 0}
fetching = []


def hook(event, args):
    if event == "socket.connect" and threading.get_ident() == reactor_thread:
        fetching.append(True)
    elif event in ("fcntl.flock", "sqlite3.connect"):
        if threading.get_ident() != reactor_thread:
            seen["elsewhere"] += 1
        else:
            seen["while_fetching" if fetching else "before_fetching"].append(event)


sys.addaudithook(hook)
atexit.register(lambda: print("WATCH " + json.dumps(seen), file=sys.stderr, flush=True))
from scrapy.cmdline import execute

sys.argv = ["scrapy", *sys.argv[1:]]
execute()
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["json", "sqlite"])
def test_a_crawl_attempts_nothing_on_the_reactor_while_it_fetches(
    store: str, tmp_path: Path
) -> None:
    """The first item's update() used to load the done keys on the reactor thread with
    requests in flight: the keys journal locked, cut and fsynced (json), or the reactor's
    SQLite connection opened with its retry loop (sqlite)."""
    with serving_demo_site(30, 2) as url:
        command = crawl_command(
            "discovery", tmp_path, start_url=url + "/", settings={"CHECKPOINT_STORE": store}
        )
        assert command[1:4] == ["-m", "scrapy", "crawl"]
        result = subprocess.run(
            [sys.executable, "-c", WATCHED_CRAWL, *command[3:]],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("WATCH ")]
    seen = json.loads(line.removeprefix("WATCH "))
    assert seen["while_fetching"] == [], seen
    # Not vacuous: the stage was locked and its keys loaded, in worker threads; with SQLite the
    # reactor's own reader was opened, before the crawl fetched.
    assert seen["elsewhere"] >= 2, seen
    if store == "sqlite":
        assert seen["before_fetching"] == ["sqlite3.connect"], seen
    assert len((tmp_path / DISCOVERY_OUTPUT).read_text().splitlines()) > 1
