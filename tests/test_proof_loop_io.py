"""Starting a completed stage over (its input changed) never does file I/O on the event loop.

Starting over saves a fresh record and cuts the outputs (see ``after_reset_record`` in the crash
points); the tracker does that in its worker thread. A Python audit hook records every file
event (open, rename, truncate, remove) made by the loop's thread while the tracker runs.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from common import AsyncCheckpointTracker

FILE_EVENTS = {"open", "os.rename", "os.replace", "os.truncate", "os.remove", "os.link"}
_watch: dict[str, Any] = {"thread": None, "seen": []}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in FILE_EVENTS and threading.get_ident() == _watch["thread"]:
        _watch["seen"].append(f"{event}{args[:1]!r}")


sys.addaudithook(_hook)  # audit hooks cannot be removed; it only acts while a test watches


async def run_stage(directory: Path, input_file: Path, output: Path, lines: list[str]) -> bool:
    tracker = AsyncCheckpointTracker(
        directory, "restarted", input_file=input_file, output_file=output
    )
    async with tracker:
        started = tracker.start(total_items=len(lines))
        for index, url in enumerate(lines):
            if not tracker.should_skip(index):
                tracker.update(processed=1, successful=1, index=index, record={"url": url})
    return started


@pytest.mark.asyncio
async def test_a_restart_over_a_changed_input_happens_off_the_loop(tmp_path: Path) -> None:
    input_file, output = tmp_path / "input.txt", tmp_path / "out.jsonl"
    first = ["https://a.test/1", "https://a.test/2"]
    input_file.write_text("\n".join(first))
    assert await run_stage(tmp_path / "checkpoints", input_file, output, first)
    second = ["https://b.test/1", "https://b.test/2", "https://b.test/3"]
    input_file.write_text("\n".join(second))

    _watch["thread"], _watch["seen"] = threading.get_ident(), []
    try:
        assert await run_stage(tmp_path / "checkpoints", input_file, output, second)
    finally:
        _watch["thread"] = None
    assert _watch["seen"] == []
    urls = [json.loads(line)["url"] for line in output.read_text().splitlines()]
    assert urls == second
