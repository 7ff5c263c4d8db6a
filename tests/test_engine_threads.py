"""Which thread writes which field (the docstrings of common/checkpoint.py and of its
collaborators: common/save_coordinator.py's table, common/outputs.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from common import EnhancedCheckpoint
from common.journal import Journal
from common.save_coordinator import SaveCoordinator
from tests._waiting import wait_for
from tests.conftest import FakeClock

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Writers:
    """Records the thread of every assignment to a spied attribute."""

    def __init__(self) -> None:
        self.threads: dict[str, set[int]] = defaultdict(set)

    def spy(self, monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> None:
        slot = f"_spied_{name}"
        writers = self.threads[f"{cls.__name__}.{name}"]

        def get(obj: Any) -> Any:
            return obj.__dict__[slot]

        def set_(obj: Any, value: Any) -> None:
            writers.add(threading.get_ident())
            obj.__dict__[slot] = value

        monkeypatch.setattr(cls, name, property(get, set_), raising=False)


def test_each_field_has_one_writing_thread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_clock: FakeClock
) -> None:
    writers = _Writers()
    writers.spy(monkeypatch, Journal, "committed")
    writers.spy(monkeypatch, SaveCoordinator, "_last_saved")
    owner = threading.get_ident()
    cp = EnhancedCheckpoint(
        tmp_path / "checkpoints/threads.json",
        clock=fake_clock,
        auto_save_interval=5,
        save_every_seconds=3600,
        min_save_interval=0.05,
    )
    try:
        cp.attach_output(tmp_path / "out.jsonl")
        cp.start(total_items=100)
        for i in range(40):  # saves by count, deferred saves taken by the timer
            cp.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})
        wait_for(
            lambda: cp.saver_state.value == "idle" and not cp._saving.scheduler.in_flight,
            60,
            "the timer's save",
        )
        cp.complete()
    finally:
        cp.close()
    assert writers.threads["Journal.committed"] == {owner}
    saver_threads = writers.threads["SaveCoordinator._last_saved"] - {owner}
    assert len(saver_threads) == 1  # the saver thread, and no other
    assert writers.threads["SaveCoordinator._last_saved"] <= {owner} | saver_threads
    # The owner only sets its initial None; every record comes from the saver thread.
    out = (tmp_path / "out.jsonl").read_bytes()
    assert out.count(b"\n") == 40


def test_the_engine_refuses_to_run_without_the_gil() -> None:
    """update()'s lock-free handshake with the timer relies on the GIL's ordering."""
    code = (
        "import sys; sys._is_gil_enabled = lambda: False\n"
        "try:\n    import common.checkpoint\n"
        "except ImportError as error:\n    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "needs the GIL: on a free-threaded CPython run with PYTHON_GIL=1" in done.stdout
