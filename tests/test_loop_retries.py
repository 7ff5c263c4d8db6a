"""The lock and SQLite retry loops never hold up an async caller's event loop.

Two loops sleep 10 ms between attempts: ``StageLock.acquire`` retries ``flock`` while a reader's
probe holds the lock shared for a moment, and ``SqliteStore`` retries opening a thread's
connection while another connection sets the database up. Each attempt is a ``fcntl.flock`` or
a ``sqlite3.connect`` call, events a Python audit hook sees with the calling thread: when the
loop's thread makes neither, neither loop (nor its sleep) ran on the loop. A probe held across
the tracker's entry shows more: the loop goes on running while the acquire retries in its
worker thread, and the retry then succeeds because the loop let the probe go.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
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
from tools.checkpoint_cli.dashboard import Dashboard

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
