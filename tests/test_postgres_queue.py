"""The PostgreSQL work queue on a real server: load, claim, lease, expiry, ownership, limits.

Lease expiry is made to happen by moving a lease's expiry into the past in the database (the
queue reads the database clock), so no test waits for a lease to run out.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from common.errors import CheckpointLockedError, InputChangedError
from common.work_queue import (
    Batch,
    ItemResult,
    LeaseKeeper,
    LeaseLostError,
    StageNotLoadedError,
    WorkQueue,
    WorkQueueError,
    describe_dsn,
    export_outputs,
)
from tests._live_writer import OUTPUT_WRITER, live_writer, release

REPO_ROOT = Path(__file__).resolve().parent.parent
STAGE = "stage3_async_enrichment"
URLS = [f"http://site.test/page-{i}" for i in range(10)]

OpenQueue = Callable[..., WorkQueue]


@pytest.fixture
def open_queue(postgres_dsn: str) -> Iterator[OpenQueue]:
    opened: list[WorkQueue] = []

    def make(stage: str = STAGE) -> WorkQueue:
        queue = WorkQueue(postgres_dsn, stage)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


def load(queue: WorkQueue, urls: list[str] = URLS, **options: object) -> None:
    queue.load(((u, None) for u in urls), input_hash="h1", config={"fetch": {}}, **options)  # type: ignore[arg-type]


def expire(dsn: str, batch: Batch) -> None:
    """Make ``batch``'s lease run out now, as if its worker had stopped extending it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE rcq_items SET lease_expires = clock_timestamp() - interval '1 second' "
            "WHERE lease_token = %s",
            (batch.token,),
        )


def ok(batch: Batch) -> list[ItemResult]:
    return [
        ItemResult(item.key, "ok", {"url": item.key, "n": item.position}) for item in batch.items
    ]


def test_load_is_idempotent_and_keeps_input_order(open_queue: OpenQueue) -> None:
    queue = open_queue()
    first = queue.load(
        ((u, {"i": i}) for i, u in enumerate(URLS + URLS[:3])), input_hash="h1", config={"a": 1}
    )
    again = open_queue().load(((u, None) for u in URLS), input_hash="h1", config={"a": 1})
    assert first.created and not again.created
    assert first.stage.total == again.stage.total == len(URLS)
    batch = queue.claim("w1", 100)
    assert batch is not None
    assert [item.key for item in batch.items] == URLS
    assert [item.position for item in batch.items] == list(range(len(URLS)))


def test_changed_input_is_refused_forced_or_started_fresh(open_queue: OpenQueue) -> None:
    queue = open_queue()
    load(queue)
    with pytest.raises(InputChangedError, match="loaded from a different input"):
        queue.load([("http://other/", None)], input_hash="h2", config={})
    assert queue.stage_record().total == len(URLS)
    forced = queue.load([("http://other/", None)], input_hash="h2", config={}, force=True)
    assert not forced.created and forced.stage.total == len(URLS)
    fresh = queue.load([("http://other/", None)], input_hash="h3", config={}, fresh=True)
    assert fresh.created and fresh.stage.total == 1


def test_unloaded_stage_is_a_clear_error(open_queue: OpenQueue, postgres_dsn: str) -> None:
    with pytest.raises(StageNotLoadedError, match="not loaded in the work queue at postgresql://"):
        open_queue().claim("w1", 5)
    shown = describe_dsn(postgres_dsn + " password=secret")
    assert "secret" not in shown and shown.startswith("postgresql://postgres@127.0.0.1")
    assert "secret" not in describe_dsn("postgresql://u:secret@db.example:5433/crawl")


def test_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(
        WorkQueueError, match=r"cannot reach the work queue at postgresql://nobody@127.0.0.1:1/x"
    ):
        WorkQueue("postgresql://nobody@127.0.0.1:1/x", STAGE, connect_timeout=2)


def test_concurrent_claims_get_disjoint_batches(open_queue: OpenQueue) -> None:
    load(open_queue(), [f"http://site.test/{i}" for i in range(400)])
    queues = [open_queue() for _ in range(4)]
    claimed: list[list[str]] = [[] for _ in queues]
    barrier = threading.Barrier(len(queues))

    def claimer(n: int) -> None:
        barrier.wait()
        while (batch := queues[n].claim(f"w{n}", 7)) is not None:
            claimed[n].extend(batch.keys)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(len(queues))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [key for keys in claimed for key in keys]
    assert len(every) == len(set(every)) == 400
    assert sum(1 for keys in claimed if keys) >= 2, "one claimer took everything"


def test_expired_lease_is_claimable_and_old_owner_cannot_commit(
    open_queue: OpenQueue, postgres_dsn: str
) -> None:
    queue_a, queue_b = open_queue(), open_queue()
    load(queue_a, URLS[:4])
    batch_a = queue_a.claim("a", 4)
    assert batch_a is not None
    assert queue_b.claim("b", 4) is None, "a live lease was handed out twice"
    expire(postgres_dsn, batch_a)
    batch_b = queue_b.claim("b", 4)
    assert batch_b is not None and batch_b.keys == batch_a.keys
    assert all(item.attempts == 2 for item in batch_b.items)
    with pytest.raises(LeaseLostError, match="lost the lease on 4 of 4 items") as lost:
        queue_a.commit(batch_a, ok(batch_a))
    assert lost.value.committed == 0
    assert queue_a.extend([batch_a.token]) == set()
    queue_b.commit(batch_b, ok(batch_b))
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT key, worker, state FROM rcq_items ORDER BY position").fetchall()
        lines = conn.execute("SELECT count(*) FROM rcq_outputs").fetchone()
    assert rows == [(key, "b", "done") for key in batch_a.keys]
    assert lines == (4,)


def test_partly_taken_over_batch_commits_only_what_it_still_owns(
    open_queue: OpenQueue, postgres_dsn: str
) -> None:
    queue_a, queue_b = open_queue(), open_queue()
    load(queue_a, URLS[:4])
    batch_a = queue_a.claim("a", 4)
    assert batch_a is not None
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE rcq_items SET lease_expires = clock_timestamp() - interval '1 second' "
            "WHERE key = %s",
            (batch_a.keys[0],),
        )
    batch_b = queue_b.claim("b", 4)
    assert batch_b is not None and batch_b.keys == batch_a.keys[:1]
    with pytest.raises(LeaseLostError, match="1 of 4") as lost:
        queue_a.commit(batch_a, ok(batch_a))
    assert lost.value.committed == 3
    progress = queue_a.progress()
    assert (progress.successful, progress.leased) == (3, 1)
    assert queue_b.commit(batch_b, ok(batch_b)) == 1
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT key, worker FROM rcq_items ORDER BY position").fetchall()
        lines = conn.execute("SELECT key FROM rcq_outputs ORDER BY position").fetchall()
    assert rows == [(URLS[0], "b"), *((key, "a") for key in URLS[1:4])]
    assert lines == [(key,) for key in URLS[:4]]


def test_commit_stores_done_states_and_lines_in_one_step(
    open_queue: OpenQueue, postgres_dsn: str
) -> None:
    queue = open_queue()
    load(queue, URLS[:3])
    batch = queue.claim("w", 3)
    assert batch is not None
    results = [
        ItemResult(URLS[0], "ok", {"url": URLS[0], "title": "é"}),
        ItemResult(URLS[1], "skipped"),
        ItemResult(URLS[2], "failed", {"url": URLS[2], "error": "404"}, error="404"),
    ]
    with pytest.raises(WorkQueueError, match="do not match"):
        queue.commit(batch, results[:2])
    queue.commit(batch, results)
    progress = queue.progress()
    assert (progress.successful, progress.skipped, progress.failed, progress.remaining) == (
        1,
        1,
        1,
        0,
    )
    with psycopg.connect(postgres_dsn) as conn:
        lines = conn.execute("SELECT kind, line FROM rcq_outputs ORDER BY position").fetchall()
    assert lines == [
        ("output", '{"url":"' + URLS[0] + '","title":"é"}\n'),
        ("failed", '{"url":"' + URLS[2] + '","error":"404"}\n'),
    ]


def test_attempt_limit_abandons_a_poison_item_into_the_failed_lines(
    open_queue: OpenQueue, postgres_dsn: str, tmp_path: Path
) -> None:
    queue = open_queue()
    load(queue, URLS[:2], max_attempts=2)
    for _ in range(2):
        batch = queue.claim("crasher", 1)
        assert batch is not None and batch.keys == URLS[:1]
        expire(postgres_dsn, batch)
    good = queue.claim("w", 5)
    assert good is not None and good.keys == URLS[1:2], (
        "the poison item was handed out a third time"
    )
    queue.commit(good, ok(good))
    assert queue.progress().remaining == 1
    assert queue.claim("w", 5) is None  # a claim that finds nothing abandons what is exhausted
    progress = queue.progress()
    assert (progress.failed, progress.abandoned, progress.remaining) == (1, 1, 0)
    result = export_outputs(queue, tmp_path / "out.jsonl", tmp_path / "out.failed.jsonl")
    assert (result.output_lines, result.failed_lines) == (1, 1)
    failed = json.loads((tmp_path / "out.failed.jsonl").read_text())
    assert failed["url"] == URLS[0] and failed["outcome"] == "abandoned" and failed["attempts"] == 2
    assert "crasher" in failed["error"]


def test_release_returns_items_without_spending_an_attempt(open_queue: OpenQueue) -> None:
    queue = open_queue()
    load(queue, URLS[:2], max_attempts=1)
    batch = queue.claim("w", 2)
    assert batch is not None
    assert queue.release(batch) == 2
    again = queue.claim("w2", 2)
    assert again is not None and [i.attempts for i in again.items] == [1, 1]
    assert queue.release(again, error="boom") == 2
    assert queue.claim("w3", 2) is None
    assert queue.progress().abandoned == 2


def test_lease_keeper_extends_then_notices_a_takeover(
    open_queue: OpenQueue, postgres_dsn: str
) -> None:
    queue = open_queue()
    load(queue, URLS[:2], lease_seconds=30)
    batch = queue.claim("w", 2)
    assert batch is not None

    def expiry() -> float:
        with psycopg.connect(postgres_dsn) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM min(lease_expires)) FROM rcq_items WHERE lease_token = %s",
                (batch.token,),
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0

    first = expiry()
    keeper = LeaseKeeper(lambda: WorkQueue(postgres_dsn, STAGE), "w", interval=0.05)
    keeper.track(batch.token)
    with keeper:
        deadline = time.monotonic() + 10
        while expiry() <= first:
            assert time.monotonic() < deadline, "the lease was never extended"
            time.sleep(0.02)
        assert not keeper.is_lost(batch.token)
        # A takeover, as a claim after expiry does it, in one step: the keeper may extend an
        # expired lease that nobody took yet (it is still ours), so expiring is not enough here.
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE rcq_items SET lease_token = gen_random_uuid(), worker = 'thief' "
                "WHERE lease_token = %s",
                (batch.token,),
            )
        while not keeper.is_lost(batch.token):
            assert time.monotonic() < deadline, "the takeover went unnoticed"
            time.sleep(0.02)
    assert keeper.ticks > 0
    with pytest.raises(LeaseLostError):
        queue.commit(batch, ok(batch))


def test_progress_aggregates_counts_and_workers(open_queue: OpenQueue) -> None:
    queue = open_queue()
    load(queue, URLS)
    queue.register_worker("a", host="h1", pid=1)
    queue.register_worker("b", host="h2", pid=2)
    batch_a = queue.claim("a", 3)
    batch_b = queue.claim("b", 2)
    assert batch_a is not None and batch_b is not None
    queue.commit(batch_a, ok(batch_a))
    queue.heartbeat("b", stopped=True)
    progress = queue.progress()
    assert (progress.total, progress.processed, progress.leased, progress.pending) == (10, 3, 2, 5)
    assert progress.remaining == 7 and progress.run_finished == 3
    assert progress.throughput > 0 and progress.eta_seconds is not None
    by_name = {w.worker: w for w in progress.workers}
    assert (by_name["a"].done, by_name["a"].leased, by_name["a"].alive) == (3, 0, True)
    assert (by_name["b"].leased, by_name["b"].stopped, by_name["b"].alive) == (2, True, False)
    summary = progress.to_dict()
    assert summary["remaining"] == 7 and len(summary["workers"]) == 2  # type: ignore[arg-type]
    assert "workers 1" in progress.line()


def test_export_is_ordered_exact_private_and_refused_while_work_remains(
    open_queue: OpenQueue, tmp_path: Path
) -> None:
    queue = open_queue()
    load(queue, URLS)
    output, failed = tmp_path / "out" / "o.jsonl", tmp_path / "out" / "o.failed.jsonl"
    late = queue.claim("w1", 5)
    early_claims = queue.claim("w2", 5)
    assert late is not None and early_claims is not None
    queue.commit(early_claims, ok(early_claims))
    with pytest.raises(WorkQueueError, match="5 items are not finished"):
        export_outputs(queue, output, failed)
    assert not output.exists()
    queue.commit(late, ok(late))
    export_outputs(queue, output, failed)
    first = output.read_bytes()
    assert [json.loads(line)["url"] for line in first.splitlines()] == URLS
    assert failed.read_bytes() == b""
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    export_outputs(queue, output, failed)
    assert output.read_bytes() == first
    assert queue.progress().exported


def test_every_public_name_of_the_queue_modules_imports_from_the_package() -> None:
    """The package loads its psycopg modules on first use, each name found in its module's
    own __all__: every one of them imports from the package, as the same object."""
    import common.work_queue as package
    from common.work_queue import export, lease, queue

    for module in (package, queue, export, lease):
        for name in module.__all__:
            namespace: dict[str, object] = {}
            exec(f"from common.work_queue import {name} as value", namespace)
            assert namespace["value"] is getattr(module, name), (module.__name__, name)
    with pytest.raises(ImportError, match="cannot import name 'NoSuchName'"):
        exec("from common.work_queue import NoSuchName", {})


def test_the_package_alone_and_probes_for_private_names_do_not_load_psycopg() -> None:
    probe = (
        "import sys, common.work_queue as package\n"
        "assert not hasattr(package, '__wrapped__') and not hasattr(package, '_private')\n"
        "print('psycopg' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == "False", result.stderr[-2000:]


@pytest.mark.parametrize("held", ["output", "sidecar"])
def test_export_is_refused_while_another_process_writes_the_file(
    open_queue: OpenQueue, tmp_path: Path, held: str
) -> None:
    """The export takes each file's lock, as a local stage's journal does, before it writes:
    beside a live writer of either file it is refused naming the file and the pid, and the
    files are left as that writer has them (no export replaced them under it)."""
    queue = open_queue()
    load(queue, URLS)
    batch = queue.claim("w1", len(URLS))
    assert batch is not None
    queue.commit(batch, ok(batch))
    output, failed = tmp_path / "o.jsonl", tmp_path / "o.failed.jsonl"
    target = output if held == "output" else failed
    with live_writer(OUTPUT_WRITER, tmp_path / "local" / "A.json", target) as writer:
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        with pytest.raises(CheckpointLockedError) as refused:
            export_outputs(queue, output, failed)
        assert refused.value.holder_pid == writer.pid
        assert str(target) in str(refused.value) and f"process {writer.pid}" in str(refused.value)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
        assert not queue.progress().exported
        assert release(writer) == 0
    assert b'"live"' in target.read_bytes()  # the local stage's record, still in its file
