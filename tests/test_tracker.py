"""AsyncCheckpointTracker on asyncio and trio: statuses on exit, resume, batches, hooks, loop lag."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from common import AsyncCheckpointTracker, CheckpointStatus, EnhancedCheckpoint, JsonFileStore
from common.scrapy.middleware import AsyncCheckpointTracker as SeedImportPath
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

SEED_LINE = (
    "Progress: 45.5% (5000/11000) | Success: 98.2% | Throughput: 42.3 items/sec | ETA: 2.4 min"
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@dataclass
class Item:
    url: str


@dataclass
class Result:
    success: bool


async def process_item(item: Item) -> Result:
    await anyio.sleep(0)
    return Result(success=not item.url.endswith("7"))


def _saved(checkpoint_dir: Path, stage: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((checkpoint_dir / f"{stage}.json").read_text())
    return data


def _records(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def _yield_randomly(rng: random.Random, most: int = 20) -> None:
    for _ in range(rng.randint(0, most)):
        await anyio.sleep(0)


async def test_seed_usage_verbatim(
    checkpoint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert SeedImportPath is AsyncCheckpointTracker
    items = [Item(f"https://site/{n}") for n in range(250)]

    async with AsyncCheckpointTracker(checkpoint_dir, "my_stage") as tracker:
        tracker.start(total_items=len(items))

        for i, item in enumerate(items):
            # Skip if already processed
            if tracker.should_skip(i):
                continue

            # Process item
            result = await process_item(item)

            # Update checkpoint
            tracker.update(
                processed=1,
                successful=1 if result.success else 0,
                failed=0 if result.success else 1,
                last_item=item.url,
                index=i,
            )

            # Print progress every 100 items
            if i % 100 == 0:
                tracker.print_progress()

    data = _saved(checkpoint_dir, "my_stage")
    assert data["status"] == "completed"
    assert data["progress"]["processed_items"] == 250
    assert data["progress"]["failed_items"] == 25
    assert data["progress"]["successful_items"] == 225
    assert data["last_processed_item"] == "https://site/249"
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in printed if line.startswith("Progress:")] == [
        "Progress: 0.4% (1/250)",  # i = 0, 100, 200: printed, as the seed's script expects
        "Progress: 40.4% (101/250)",
        "Progress: 80.4% (201/250)",
    ]

    async with AsyncCheckpointTracker(checkpoint_dir, "my_stage") as again:
        assert again.start(total_items=len(items)) is False
        assert all(again.should_skip(i) for i in range(250))
    assert _saved(checkpoint_dir, "my_stage")["status"] == "completed"


async def test_300_tasks_finishing_out_of_order(checkpoint_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    rng = random.Random(300)
    finished: list[int] = []

    async with AsyncCheckpointTracker(
        checkpoint_dir, "fanout", output_file=output, auto_save_interval=7
    ) as tracker:
        tracker.start(total_items=300)

        async def work(i: int) -> None:
            await _yield_randomly(rng)
            assert tracker.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})
            finished.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(work, i)

    assert finished != sorted(finished)  # they really did finish out of order
    data = _saved(checkpoint_dir, "fanout")
    assert data["status"] == "completed"
    assert data["progress"]["processed_items"] == 300
    assert data["completion"]["watermark"] == 300
    assert data["completion"]["done_above"] == []
    urls = [r["url"] for r in _records(output)]
    assert Counter(urls) == Counter(f"u{i}" for i in range(300))
    assert urls == [f"u{i}" for i in finished]


async def test_exception_fails_the_stage_and_propagates(checkpoint_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with AsyncCheckpointTracker(checkpoint_dir, "crashy") as tracker:
            tracker.start(total_items=10)
            tracker.update(processed=1, successful=1, index=0)
            raise RuntimeError("boom")
    data = _saved(checkpoint_dir, "crashy")
    assert data["status"] == "failed"
    assert data["error_message"] == "RuntimeError: boom"
    assert data["error_count"] == 1
    assert data["progress"]["processed_items"] == 1


async def test_cancellation_pauses_the_stage(checkpoint_dir: Path) -> None:
    reached_end = False
    with anyio.CancelScope() as scope:
        async with AsyncCheckpointTracker(checkpoint_dir, "cancelled") as tracker:
            tracker.start(total_items=10)
            tracker.update(processed=1, successful=1, index=0)
            scope.cancel()
            await anyio.sleep(0)
            reached_end = True
    assert scope.cancelled_caught
    assert not reached_end
    data = _saved(checkpoint_dir, "cancelled")
    assert data["status"] == "paused"
    assert data["progress"]["processed_items"] == 1
    assert data["error_count"] == 0


async def test_resume_after_failure_does_only_the_rest(
    checkpoint_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    rng = random.Random(7)
    order = list(range(300))
    rng.shuffle(order)
    first_half = set(order[:150])

    with pytest.raises(ValueError, match="upstream down"):
        async with AsyncCheckpointTracker(
            checkpoint_dir, "resumable", output_file=output, auto_save_interval=10
        ) as tracker:
            tracker.start(total_items=300)

            async def work(i: int) -> None:
                await _yield_randomly(rng)
                tracker.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})

            async with anyio.create_task_group() as tg:
                for i in sorted(first_half):
                    tg.start_soon(work, i)
            raise ValueError("upstream down")
    assert _saved(checkpoint_dir, "resumable")["status"] == "failed"

    redone: list[int] = []
    async with AsyncCheckpointTracker(
        checkpoint_dir, "resumable", output_file=output, auto_save_interval=10
    ) as tracker:
        assert tracker.start(total_items=300) is True
        for i in range(300):
            if tracker.should_skip(i):
                continue
            await _yield_randomly(rng, 2)
            tracker.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})
            redone.append(i)

    assert set(redone) == set(range(300)) - first_half
    data = _saved(checkpoint_dir, "resumable")
    assert data["status"] == "completed"
    assert data["progress"]["processed_items"] == 300
    urls = [r["url"] for r in _records(output)]
    assert len(urls) == 300
    assert set(urls) == {f"u{i}" for i in range(300)}


async def test_batches_commit_all_or_nothing(checkpoint_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    async with AsyncCheckpointTracker(checkpoint_dir, "batched", output_file=output) as tracker:
        tracker.start(total_items=10)
        with pytest.raises(KeyError, match="bad row"), tracker.batch() as batch:
            for i in range(5):
                batch.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})
            raise KeyError("bad row")
        assert tracker.progress().processed == 0
        assert not any(tracker.should_skip(i) for i in range(5))
        assert tracker.checkpoint.state.error_count == 1
        assert "batch 0 failed" in (tracker.checkpoint.state.error_message or "")
        await tracker.save()
        assert not output.exists() or output.read_bytes() == b""

        with tracker.batch() as batch:
            for i in range(5):
                batch.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})
            assert len(batch) == 5
            assert tracker.progress().processed == 0  # not before the batch succeeds
        assert tracker.progress().processed == 5
        assert all(tracker.should_skip(i) for i in range(5))
        assert tracker.checkpoint.state.batch_id == 1
    assert [r["url"] for r in _records(output)] == [f"u{i}" for i in range(5)]
    assert _saved(checkpoint_dir, "batched")["batch_id"] == 1


BAD_UPDATES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"index": 5.0}, TypeError, "update() index must be an integer, not float (5.0)"),
    ({"index": "3"}, TypeError, "update() index must be an integer, not str ('3')"),
    ({"index": -1}, ValueError, "update() index must be >= 0, got -1"),
    ({"key": 7}, TypeError, "update() key must be a string, not int (7)"),
    ({"part": b"p"}, TypeError, "update() part must be a string, not bytes"),
    ({"processed": 1.0}, TypeError, "update() counts must be integers"),
    ({"successful": 2}, ValueError, "inconsistent update (processed=1, successful=2"),
    ({"record": ["a"]}, TypeError, "update(record=...) must be a mapping"),
    ({"record": {"x": object()}}, TypeError, "update(record=...) cannot be written as JSON"),
    ({"attempts": -1}, ValueError, "update() attempts must be >= 0, got -1"),
    ({"idx": 3}, TypeError, "unexpected keyword argument 'idx'"),
]


@pytest.mark.parametrize(
    ("bad", "error", "message"), BAD_UPDATES, ids=[next(iter(b)) for b, _, _ in BAD_UPDATES]
)
async def test_a_bad_batch_update_raises_at_its_call_and_the_batch_records_nothing(
    checkpoint_dir: Path, tmp_path: Path, bad: dict[str, Any], error: type[Exception], message: str
) -> None:
    output = tmp_path / "out.jsonl"
    async with AsyncCheckpointTracker(checkpoint_dir, "batched", output_file=output) as tracker:
        tracker.start(total_items=10)
        # update() refuses the same arguments with the same message.
        with pytest.raises(error, match=re.escape(message)):
            tracker.update(**{"processed": 1, **bad})
        reached_after_the_bad_call = False
        with pytest.raises(error, match=re.escape(message)) as raised, tracker.batch() as batch:
            batch.update(processed=1, successful=1, index=0, record={"url": "u0"})
            batch.update(processed=1, successful=1, index=1, record={"url": "u1"})
            batch.update(**{"processed": 1, **bad})
            reached_after_the_bad_call = True
        assert not reached_after_the_bad_call  # raised at the call, not at the block's end
        assert "stage 'batched'" in str(raised.value) or "idx" in bad
        # The updates queued before it are not recorded either: the batch is redone whole.
        assert tracker.progress().processed == 0
        assert not tracker.should_skip(0) and not tracker.should_skip(1)
        assert tracker.checkpoint.state.error_count == 1
        with tracker.batch() as batch:  # the redo
            for i in range(2):
                batch.update(processed=1, successful=1, index=i, record={"url": f"u{i}"})
    assert [r["url"] for r in _records(output)] == ["u0", "u1"]
    assert _saved(checkpoint_dir, "batched")["progress"]["processed_items"] == 2


class HookedTracker(AsyncCheckpointTracker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, Any]] = []

    async def on_success(self) -> None:
        await anyio.sleep(0)
        self.calls.append(("success", self.checkpoint.status))

    async def on_failure(self, error: BaseException) -> None:
        await anyio.sleep(0)
        self.calls.append(("failure", error))


async def test_hooks_are_called(checkpoint_dir: Path) -> None:
    async with HookedTracker(checkpoint_dir, "hooked_ok") as ok:
        ok.start(total_items=1)
        ok.update(processed=1, successful=1, index=0)
    assert ok.calls == [("success", CheckpointStatus.RUNNING)]  # before it is completed
    assert _saved(checkpoint_dir, "hooked_ok")["status"] == "completed"

    error = LookupError("nope")
    bad = HookedTracker(checkpoint_dir, "hooked_bad")
    with pytest.raises(LookupError):
        async with bad:
            bad.start(total_items=1)
            raise error
    assert bad.calls == [("failure", error)]
    assert _saved(checkpoint_dir, "hooked_bad")["status"] == "failed"


async def test_print_progress_prints_and_returns_the_seed_line(
    checkpoint_dir: Path, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with AsyncCheckpointTracker(checkpoint_dir, "line", clock=fake_clock) as tracker:
        tracker.start(total_items=11000)
        tracker.update(processed=5000, successful=4910, failed=90)
        fake_clock.advance(5000 / 42.3)
        assert tracker.print_progress() == SEED_LINE
        assert tracker.progress().throughput == pytest.approx(42.3)
    assert SEED_LINE + "\n" in capsys.readouterr().out


async def test_start_metadata_and_input_guard(checkpoint_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    source.write_text('{"url": "a"}\n')
    async with AsyncCheckpointTracker(checkpoint_dir, "guarded", input_file=source) as tracker:
        tracker.start(total_items=1, metadata={"spider_name": "discovery"})
        assert tracker.has_work
    data = _saved(checkpoint_dir, "guarded")
    assert data["metadata"] == {"spider_name": "discovery"}
    assert data["input_file_hash"].startswith("sha256:")
    assert data["status"] == "completed"


class CountingStore(JsonFileStore):
    saves = 0

    def save(self, stage: str, record: dict[str, Any]) -> None:
        super().save(stage, record)
        self.saves += 1


async def test_saves_never_stall_the_event_loop(checkpoint_dir: Path, tmp_path: Path) -> None:
    store = CountingStore(checkpoint_dir)
    worst = 0.0
    probes = 0
    running = True
    longest_update = 0.0
    saves_mid_loop = probes_mid_loop = 0

    async def probe() -> None:
        nonlocal worst, probes
        while running:
            before = anyio.current_time()
            await anyio.sleep(0.001)
            worst = max(worst, anyio.current_time() - before - 0.001)
            probes += 1

    async with AsyncCheckpointTracker(
        checkpoint_dir,
        "lag",
        store=store,
        auto_save_interval=1,
        output_file=tmp_path / "out.jsonl",
    ) as tracker:
        tracker.start(total_items=2000)
        update = tracker.update
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe)
            for i in range(2000):
                began = time.thread_time()
                update(
                    processed=1, successful=1, index=i, record={"url": f"u{i}", "pad": "x" * 200}
                )
                longest_update = max(longest_update, time.thread_time() - began)
                if i == 1000:  # the loop keeps going only once saves have run beside it
                    with anyio.fail_after(60):
                        while store.saves < 2:
                            await anyio.sleep(0.001)
                    saves_mid_loop = store.saves
                    probes_mid_loop = probes
                await anyio.sleep(0)
            running = False
        saves_during_loop = store.saves
        await tracker.save()

    # start() saved once; more saves ran while the loop was busy, and the loop still turned.
    assert saves_mid_loop >= 2 and saves_during_loop >= saves_mid_loop, store.saves
    assert probes > probes_mid_loop
    # The checkpoint's own CPU time on the loop thread per update (saves included), not the
    # wall clock, which a busy machine stretches: no update may hold the loop for 5 ms.
    assert longest_update < 0.005, f"an update took {longest_update * 1000:.2f} ms of CPU"
    assert len(_records(tmp_path / "out.jsonl")) == 2000


async def test_the_tracker_checkpoint_is_an_enhanced_checkpoint(checkpoint_dir: Path) -> None:
    tracker = AsyncCheckpointTracker(checkpoint_dir, "plain")
    with pytest.raises(RuntimeError, match="async with"):
        _ = tracker.checkpoint
    async with tracker:
        assert isinstance(tracker.checkpoint, EnhancedCheckpoint)
        assert tracker.checkpoint.path == checkpoint_dir / "plain.json"
        assert tracker.output is None


async def test_the_per_item_calls_are_the_engines_own_and_need_async_with(
    checkpoint_dir: Path,
) -> None:
    """should_skip/update are the engine's bound methods once entered (no layer per call),
    raise the "async with" error before, and a subclass's own override is kept."""
    tracker = AsyncCheckpointTracker(checkpoint_dir, "bound")
    for name in ("should_skip", "update"):
        with pytest.raises(RuntimeError, match="async with"):
            getattr(tracker, name)
    async with tracker:
        checkpoint = tracker.checkpoint
        assert tracker.should_skip == checkpoint.should_skip
        assert tracker.update == checkpoint.update
        assert "update" in vars(tracker)  # a plain attribute read per item
        tracker.start(total_items=2)
        assert tracker.update(processed=1, successful=1, index=0)
        assert tracker.should_skip(0) and not tracker.should_skip(1)

    seen: list[int | None] = []

    class Counting(AsyncCheckpointTracker):
        def update(self, *args: Any, **kwargs: Any) -> bool:
            seen.append(kwargs.get("index"))
            result: bool = super().update(*args, **kwargs)
            return result

    async with Counting(checkpoint_dir, "bound_sub") as counting:
        counting.start(total_items=2)
        counting.update(processed=1, successful=1, index=0)
        assert counting.should_skip(0)
    assert seen == [0]
    assert _saved(checkpoint_dir, "bound_sub")["progress"]["processed_items"] == 1


async def test_sigterm_pauses_the_stage_and_ends_the_block_normally(checkpoint_dir: Path) -> None:
    """handle_signals=True: SIGTERM cancels the body, saves the stage as paused, sets
    stopped_by_signal, and the ``async with`` block ends without an exception (review A.1 #14)."""
    reached_after_signal = False
    async with AsyncCheckpointTracker(checkpoint_dir, "signalled", handle_signals=True) as tracker:
        tracker.start(total_items=10)
        for i in range(3):
            tracker.update(processed=1, successful=1, index=i)
        os.kill(os.getpid(), signal.SIGTERM)
        with anyio.fail_after(60):
            await anyio.sleep_forever()  # cancelled by the signal watcher
        reached_after_signal = True
    assert not reached_after_signal
    assert tracker.stopped_by_signal is signal.SIGTERM
    record = json.loads((checkpoint_dir / "signalled.json").read_text())
    assert record["status"] == "paused"
    assert record["progress"]["processed_items"] == 3


async def test_a_fresh_start_over_a_stage_with_done_keys_keeps_its_keys_journal(
    tmp_path: Path,
) -> None:
    """fresh=True over a stage with a keys journal: its reset removed the file while the journal
    stayed attached, so the new run's keys went into the removed file, the record counted them,
    and the next run was refused ('journal ... is missing but N bytes were committed')."""
    journal = tmp_path / "cps" / "s.keys.jsonl"

    async def run(*, fresh: bool) -> None:
        tracker = AsyncCheckpointTracker(tmp_path / "cps", "s", fresh=fresh)
        async with tracker:
            tracker.start(total_items=3)
            for index in range(3):
                if not tracker.should_skip(index):
                    tracker.update(index=index, key=f"k{index}", processed=1, successful=1)

    await run(fresh=False)
    await run(fresh=True)
    assert [json.loads(line) for line in journal.read_bytes().splitlines()] == ["k0", "k1", "k2"]
    assert _saved(tmp_path / "cps", "s")["journals"]["keys"] == journal.stat().st_size
    await run(fresh=False)  # the next run starts (it has nothing left to do)
