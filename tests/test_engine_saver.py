"""The save scheduler: its policy, its state machine and its own timer (issue 13 item 8).

The timer tests make no call after the burst (no ``tick``, ``flush``, ``save`` or ``update``):
the state must reach the disk by itself. They wait on the file with generous timeouts, which
bound a hang, never a speed.
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from common import EnhancedCheckpoint, JsonFileStore
from common.saver import SavePolicy, SaverState, SaverThread
from common.tracker import AsyncCheckpointTracker
from tests._waiting import wait_for
from tests.conftest import FakeClock, MakeCheckpoint


def processed_on_disk(path: Path) -> int | None:
    """The processed count of the checkpoint file, or None while it does not exist yet."""
    try:
        value: int = json.loads(path.read_text())["progress"]["processed_items"]
    except FileNotFoundError:
        return None
    return value


def _burst(cp: EnhancedCheckpoint, count: int) -> None:
    for i in range(count):
        cp.update(processed=1, successful=1, last_item=f"https://site/{i}", index=i)


# Policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auto_save_interval": 0}, "auto_save_interval must be >= 1, got 0"),
        ({"save_every_seconds": 0}, "save_every_seconds must be > 0, got 0"),
        ({"min_save_interval": -0.1}, "min_save_interval must be >= 0, got -0.1"),
        (
            {"min_save_interval": 10, "save_every_seconds": 5},
            "min_save_interval (10) must not exceed save_every_seconds (5)",
        ),
        ({"min_save_interval": float("nan")}, "min_save_interval must be >= 0, got nan"),
    ],
)
def test_policy_is_validated(checkpoint_dir: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        EnhancedCheckpoint(checkpoint_dir / "bad.json", **options)
    assert str(caught.value) == message
    assert not checkpoint_dir.exists()  # refused before anything was created


def test_policy_is_frozen(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("frozen", auto_save_interval=7, save_every_seconds=3, min_save_interval=1)
    assert cp.policy == SavePolicy(every_updates=7, every_seconds=3, min_interval=1)
    assert (cp.auto_save_interval, cp.save_every_seconds, cp.min_save_interval) == (7, 3, 1)
    with pytest.raises(AttributeError):
        cp.policy.min_interval = 0  # type: ignore[misc]


def test_tick_saves_only_dirty_running_work_past_the_interval(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    cp = make_checkpoint(
        "ticked",
        clock=fake_clock,
        auto_save_interval=1000,
        save_every_seconds=3600,
        min_save_interval=1,
    )
    assert cp.tick() is False  # not running
    cp.start(total_items=10)
    cp.flush()
    _burst(cp, 3)
    fake_clock.advance(0.5)
    assert cp.tick() is False  # within min_save_interval of the last save (at start)
    fake_clock.advance(1)
    assert cp.tick() is True
    cp.flush()
    assert processed_on_disk(cp.path) == 3
    fake_clock.advance(2)
    assert cp.tick() is False  # nothing unsaved


def test_update_asks_for_saves_by_count_and_by_period(
    checkpoint_dir: Path, fake_clock: FakeClock
) -> None:
    """update()'s own policy, no timer involved (its period is an hour of real time): a save
    at every ``auto_save_interval``-th update and at the first update ``save_every_seconds``
    after the last save, none before either."""
    store = _CountingStore(checkpoint_dir)
    cp = EnhancedCheckpoint(
        "policy",
        store=store,
        clock=fake_clock,
        auto_save_interval=5,
        save_every_seconds=3600,
        min_save_interval=0,
    )
    done = 0

    def updates(count: int) -> int:
        nonlocal done
        _burst_from(cp, done, count)
        done += count
        cp.flush()
        return store.saves

    try:
        cp.start(total_items=100)
        cp.flush()
        started = store.saves
        assert updates(4) == started
        assert updates(1) == started + 1  # the fifth
        assert processed_on_disk(cp.path) == 5
        assert updates(5) == started + 2  # the tenth
        fake_clock.advance(3599.5)
        assert updates(1) == started + 2  # 3,599.5 s after the last save: not yet
        fake_clock.advance(0.5)
        assert updates(1) == started + 3  # the period has passed: this update saves
        assert processed_on_disk(cp.path) == 12
        assert updates(4) == started + 3  # and the count starts again from that save
        assert updates(1) == started + 4
    finally:
        cp.close()


def _burst_from(cp: EnhancedCheckpoint, start: int, count: int) -> None:
    for i in range(start, start + count):
        cp.update(processed=1, successful=1, last_item=f"https://site/{i}", index=i)


# The timer ------------------------------------------------------------------------------------


def test_burst_then_silence_reaches_disk_with_no_further_call(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    # The injected clock stands still: every update is "within" the interval, however slow
    # the machine; the timer waits the interval in real time.
    cp = make_checkpoint(
        "burst",
        clock=fake_clock,
        auto_save_interval=10,
        save_every_seconds=3600,
        min_save_interval=0.2,
    )
    cp.start(total_items=100)
    cp.flush()
    _burst(cp, 25)  # due by count within 0.2 s of the start's save: deferred
    # Silence: the owner makes no call at all from here on.
    wait_for(lambda: processed_on_disk(cp.path) == 25, 60, "the burst on disk")
    wait_for(lambda: cp.saver_state is SaverState.IDLE, 60, "the saver back to idle")


def test_seed_usage_120_updates_then_silence(checkpoint_dir: Path) -> None:
    """Issue 13 item 8 as reported: the seed's constructor, defaults otherwise."""
    cp = EnhancedCheckpoint(checkpoint_dir / "seed.json", auto_save_interval=50)
    try:
        cp.start("seed", total_items=1000)
        _burst(cp, 120)  # 20 updates short of the next count-triggered save
        wait_for(lambda: processed_on_disk(cp.path) == 120, 60, "all 120 updates on disk")
    finally:
        cp.close()


def test_save_every_seconds_holds_when_updates_stop(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint(
        "period", auto_save_interval=10**6, save_every_seconds=0.3, min_save_interval=0
    )
    cp.start(total_items=10)
    cp.flush()
    _burst(cp, 3)  # far below the count: only the period can save these
    wait_for(lambda: processed_on_disk(cp.path) == 3, 60, "the period's save")


def test_save_every_seconds_holds_while_updates_continue(
    make_checkpoint: MakeCheckpoint,
) -> None:
    cp = make_checkpoint(
        "steady", auto_save_interval=10**6, save_every_seconds=0.2, min_save_interval=0
    )
    cp.start(total_items=10**6)
    cp.flush()
    i = 0

    def saved_while_updating() -> bool:
        nonlocal i
        cp.update(processed=1, successful=1, index=i)
        i += 1
        saved = processed_on_disk(cp.path)
        return saved is not None and saved > 0

    wait_for(saved_while_updating, 60, "a periodic save while updates continue", interval=0.001)


def test_the_timer_takes_no_snapshot_it_must_not_take(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    """With a snapshot hook (state of the owner's thread), the timer only wakes the owner."""
    cp = make_checkpoint("hooked", clock=fake_clock, auto_save_interval=5, save_every_seconds=3600)
    hook_threads: list[int] = []
    woken = threading.Event()
    cp.add_snapshot_hook(lambda: hook_threads.append(threading.get_ident()))
    cp.set_owner_waker(woken.set)
    cp.start(total_items=100)
    cp.flush()
    _burst(cp, 5)  # deferred: within min_save_interval of the start's save
    assert woken.wait(60), "the timer never woke the owner"
    assert processed_on_disk(cp.path) == 0  # the timer itself saved nothing
    fake_clock.advance(1)
    assert cp.tick()  # what the waker's owner-thread call does
    cp.flush()
    assert processed_on_disk(cp.path) == 5
    assert set(hook_threads) == {threading.get_ident()}


class _SpyLock:
    """An RLock that reports when someone was refused it without waiting."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.refused = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self.lock.acquire(blocking, timeout)
        if not got and not blocking:
            self.refused.set()
        return got

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def test_the_timer_never_waits_for_a_busy_owner(
    make_checkpoint: MakeCheckpoint, fake_clock: FakeClock
) -> None:
    """The owner may hold the lock while it waits for the saver (reset() flushes so): the
    timer, which runs on the saver thread, must give way instead of deadlocking."""
    cp = make_checkpoint("busy", clock=fake_clock, auto_save_interval=1, save_every_seconds=3600)
    spy = _SpyLock()
    cp._saving.guard = spy  # type: ignore[assignment]
    cp.start(total_items=10)
    cp.flush()
    with spy:
        _burst(cp, 2)  # deferred: the timer fires while the owner still holds the lock
        assert spy.refused.wait(60), "the timer never tried the lock"
        cp.flush()  # waits for the saver thread: it must be free
    assert processed_on_disk(cp.path) == 2


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.mark.anyio
async def test_tracker_burst_then_silence_reaches_disk(
    checkpoint_dir: Path, fake_clock: FakeClock
) -> None:
    async with AsyncCheckpointTracker(
        checkpoint_dir, "quiet", clock=fake_clock, auto_save_interval=10, min_save_interval=0.2
    ) as tracker:
        tracker.start(total_items=100)
        await tracker.save()
        for i in range(25):
            tracker.update(processed=1, successful=1, index=i)
        path = tracker.checkpoint.path
        with anyio.fail_after(60):
            while processed_on_disk(path) != 25:
                await anyio.sleep(0.02)


class _CountingStore(JsonFileStore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.saves = 0

    def save(self, stage: str, record: dict[str, Any], *args: Any) -> None:
        super().save(stage, record, *args)
        self.saves += 1


def test_saver_thread_runs_jobs_before_a_due_timer() -> None:
    order: list[str] = []
    fired = threading.Event()

    def on_due() -> None:
        order.append("timer")
        fired.set()

    saver = SaverThread("test-saver", on_due)
    gate = threading.Event()
    try:
        first = saver.submit(lambda: gate.wait(60) and order.append("job1"))
        saver.arm(0)
        second = saver.submit(lambda: order.append("job2"))
        gate.set()
        first.result(60)
        second.result(60)
        assert fired.wait(60)
        assert order == ["job1", "job2", "timer"]
    finally:
        saver.stop()


def test_one_save_per_deferral(checkpoint_dir: Path, fake_clock: FakeClock) -> None:
    store = _CountingStore(checkpoint_dir)
    cp = EnhancedCheckpoint(
        "counted",
        store=store,
        clock=fake_clock,
        auto_save_interval=1,
        save_every_seconds=3600,
        min_save_interval=0.2,
    )
    try:
        cp.start(total_items=100)
        cp.flush()
        _burst(cp, 30)  # thirty saves due, all within the interval: one deferred save
        wait_for(lambda: processed_on_disk(cp.path) == 30, 60, "the deferred save")
        wait_for(lambda: cp.saver_state is SaverState.IDLE, 60, "the saver back to idle")
        assert store.saves == 2  # start, then the one deferred save
    finally:
        cp.close()


def test_saves_never_closer_than_min_save_interval(make_checkpoint: MakeCheckpoint) -> None:
    """A save due by count every update, updates nonstop: one snapshot per interval, whoever
    takes it (the owner's update or the timer, whose deadline may be left from an earlier
    deferral the owner has taken itself since)."""
    cp = make_checkpoint(
        "spaced", auto_save_interval=1, save_every_seconds=5, min_save_interval=0.1
    )
    ends: list[float] = []  # each snapshot's own time (its `now`), not when it returned:
    real_snapshot = cp._saving._snapshot  # a snapshot slowed by a busy machine moves no save

    def snapshot(*args: Any) -> Any:
        taken = real_snapshot(*args)
        ends.append(cp._saving.last_save_time)
        return taken

    cp._saving._snapshot = snapshot  # type: ignore[method-assign]
    cp.start(total_items=10**7)
    i = 0
    while len(ends) < 10 and i < 10**7:
        cp.update(processed=1, successful=1, index=i)
        i += 1
    cp.flush()
    gaps = [later - earlier for earlier, later in itertools.pairwise(ends)]
    assert len(gaps) >= 9
    assert min(gaps) >= 0.1 - 0.002, gaps  # the interval (the timer counts in monotonic time)


def test_records_buffered_past_the_cap_are_saved_at_once(
    checkpoint_dir: Path, fake_clock: FakeClock
) -> None:
    """Records wait in memory for the next save; once a journal buffers ``max_buffered_bytes``
    the save is taken by that update, whatever the count and the intervals say (an hour here),
    so the memory held is bounded by bytes, not by items finished within the interval."""
    cap = SavePolicy().max_buffered_bytes
    store = _CountingStore(checkpoint_dir)
    cp = EnhancedCheckpoint(
        "buffered",
        store=store,
        clock=fake_clock,
        auto_save_interval=1000,
        save_every_seconds=3600,
        min_save_interval=3600,
    )
    output = checkpoint_dir / "out.jsonl"
    cp.attach_output(output)
    big = "x" * (cap * 6 // 10)
    try:
        cp.start(total_items=10)
        cp.flush()
        started = store.saves
        cp.update(processed=1, successful=1, index=0, record={"page": big})
        cp.flush()
        assert store.saves == started  # under the cap: nothing due
        cp.update(processed=1, successful=1, index=1, record={"page": big})
        # No flush here: flush() takes a deferred save too, and a deferred save would wait an
        # hour (the timer's min_save_interval). Saved by this update, or never.
        wait_for(lambda: store.saves == started + 1, 60, "the save the update took")
        cp.flush()
        assert processed_on_disk(cp.path) == 2
        assert output.read_bytes().count(b"\n") == 2
        cp.update(processed=1, failed=1, index=2, failed_record={"error": big + big})
        wait_for(lambda: store.saves == started + 2, 60, "the failed sidecar's save")
        cp.flush()
        assert processed_on_disk(cp.path) == 3
        cp.update(processed=1, successful=1, index=3, record={"page": "small"})
        cp.flush()
        assert store.saves == started + 2  # the buffers were emptied by the save
    finally:
        cp.close()


def test_update_metadata_is_carried_by_the_next_save(make_checkpoint: MakeCheckpoint) -> None:
    cp = make_checkpoint("meta", auto_save_interval=1000, save_every_seconds=3600)
    cp.start(total_items=10)
    cp.flush()
    cp.update_metadata({"spider_name": "discovery"})
    assert cp.save() is True  # marked changed: a save has something to write
    assert json.loads(cp.path.read_text())["metadata"] == {"spider_name": "discovery"}


class _GatedClock(FakeClock):
    """A fake clock that holds one chosen thread inside its next call until released."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: int | None = None
        self.inside = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> float:
        if threading.get_ident() == self.thread:
            self.thread = None
            self.inside.set()
            self.release.wait(60)
        return self.now


def test_the_timer_never_snapshots_an_update_half_done(make_checkpoint: MakeCheckpoint) -> None:
    """update() takes no lock: the timer must back off while the owner is inside one, or it
    would save counts moved by an update whose other fields are not set yet."""
    clock = _GatedClock()
    cp = make_checkpoint(
        "half", clock=clock, auto_save_interval=1000, save_every_seconds=10, min_save_interval=0
    )
    cp.start(total_items=10)
    cp.flush()
    cp.mark_changed()  # unsaved work, so the timer has something to save
    clock.advance(20)  # and its period has passed
    snapshots: list[tuple[int, int]] = []
    real_snapshot = cp._saving._snapshot

    def snapshot(*args: Any) -> Any:
        snapshots.append((threading.get_ident(), cp._saving.updating))
        return real_snapshot(*args)

    cp._saving._snapshot = snapshot  # type: ignore[method-assign]
    backoffs = threading.Event()
    real_arm = cp._saving.scheduler.arm

    def arm(delay: float) -> None:
        if cp._saving.updating:
            backoffs.set()
        real_arm(delay)

    cp._saving.scheduler.arm = arm  # type: ignore[method-assign]

    def owner() -> None:
        clock.thread = threading.get_ident()
        cp.update(processed=1, successful=1, last_item="https://site/0", index=0)

    worker = threading.Thread(target=owner)
    worker.start()
    try:
        assert clock.inside.wait(60), "the update never read the clock"
        real_arm(0)  # the timer fires while the update is half done
        assert backoffs.wait(60), "the timer did not back off"
    finally:
        clock.release.set()
        worker.join(60)
    cp.flush()
    assert all(updating == 0 for thread, updating in snapshots if thread != worker.ident)
    assert processed_on_disk(cp.path) == 1
