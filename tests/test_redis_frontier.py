"""The Redis frontier on a real Redis server: leases, acknowledgements, dedup, export, and
Scrapy workers sharing one crawl while one of them is SIGKILLed.

Every test uses its own key prefix and deletes it afterwards (others share the server).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from common import EnhancedCheckpoint
from common.redis.frontier import (
    Ack,
    FrontierConfigError,
    NewRequest,
    RedisFrontier,
    default_output,
    export_records,
)
from tests._demo_site import serving_demo_site
from tests._waiting import wait_for
from tools.demo_site import client
from tools.testing.crawl import (
    DISCOVERY_OUTPUT,
    REPO_ROOT,
    VALIDATION_OUTPUT,
    crawl_command,
    refetched,
    run_crawl,
)
from tools.testing.jsonl_audit import audit_jsonl

T = TypeVar("T")


@pytest.fixture
def prefix() -> str:
    return f"test-redis-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_frontier(redis_url: str, prefix: str) -> Iterator[Callable[..., RedisFrontier]]:
    made: list[RedisFrontier] = []

    def make(**options: Any) -> RedisFrontier:
        frontier = RedisFrontier(redis_url, prefix, **options)
        made.append(frontier)
        return frontier

    yield make
    if made:
        made[0].delete()
    for frontier in made:
        frontier.close()


def req(fp: str, priority: int = 0) -> NewRequest:
    return NewRequest(fp, json.dumps({"url": f"http://site/{fp}"}), priority)


def record(url: str, **fields: Any) -> tuple[str, str]:
    return url, json.dumps({"url": url, **fields})


# Frontier units ----------------------------------------------------------------------------------


def test_requests_are_deduplicated_across_workers(make_frontier: Callable[..., RedisFrontier]):
    frontier = make_frontier()
    frontier.register("w1", "cfg")
    frontier.register("w2", "cfg")
    assert frontier.push("w1", [req("a"), req("b"), req("a")]) == 2
    assert frontier.push("w2", [req("b"), req("c")]) == 1
    # A request that bypasses the dupefilter (dont_filter) is queued every time.
    assert frontier.push("w2", [req(""), req("")]) == 2
    taken = frontier.lease("w1", 10)
    bodies = [json.loads(body)["url"] for _id, body in taken.requests]
    assert sorted(bodies) == sorted(
        ["http://site/a", "http://site/b", "http://site/c"] + ["http://site/"] * 2
    )
    # A child of an acknowledged page is deduplicated against everything seen before.
    first = taken.requests[0][0]
    result = frontier.commit("w1", acks=[Ack(first, children=[req("a"), req("d")])])
    assert (result.acked, result.pushed) == (1, 1)
    assert frontier.status()["seen"] == 4


def test_queue_order_is_priority_then_fifo(make_frontier: Callable[..., RedisFrontier]):
    frontier = make_frontier()
    frontier.register("w1", "cfg")
    frontier.push("w1", [req("low1", -2), req("high1", 3), req("mid", 0), req("high2", 3)])
    frontier.push("w1", [req("low2", -2), req("huge", 2**30)])  # clamped, still first
    order = [json.loads(b)["url"].rsplit("/", 1)[1] for _i, b in frontier.lease("w1", 10).requests]
    assert order == ["huge", "high1", "high2", "mid", "low1", "low2"]


def test_expired_lease_is_requeued_and_its_late_ack_refused(
    make_frontier: Callable[..., RedisFrontier],
):
    frontier = make_frontier(lease_seconds=0.3)
    frontier.register("dies", "cfg")
    frontier.register("lives", "cfg")
    frontier.push("dies", [req("page")])
    held = frontier.lease("dies", 5).requests
    assert len(held) == 1
    request_id = held[0][0]
    # While the lease is alive, nobody else gets the request.
    assert frontier.lease("lives", 5).requests == []
    started = time.monotonic()
    # "dies" stops renewing; "lives" keeps asking until the request comes back to the queue.
    retaken = wait_for(
        lambda: frontier.lease("lives", 5).requests, 10, "the expired lease to be re-queued"
    )
    assert time.monotonic() - started >= 0.2
    assert [rid for rid, _ in retaken] == [request_id]
    assert frontier.status()["requeued"] == 1
    # The presumed-dead worker finishes after all: its acknowledgement is refused, nothing stored.
    late = frontier.commit("dies", acks=[Ack(request_id, [record("http://site/page", by="dies")])])
    assert (late.acked, late.refused) == (0, 1)
    assert frontier.records_count() == 0
    # The new holder's acknowledgement counts.
    ok = frontier.commit("lives", acks=[Ack(request_id, [record("http://site/page", by="lives")])])
    assert (ok.acked, ok.refused) == (1, 0)
    rows = dict(frontier.iter_records())
    assert json.loads(rows["http://site/page"])["by"] == "lives"
    # A lapsed worker is told so on its next call.
    assert frontier.lease("dies", 0).lost


def test_ack_without_the_lease_stores_nothing(make_frontier: Callable[..., RedisFrontier]):
    frontier = make_frontier()
    frontier.register("w1", "cfg")
    frontier.register("w2", "cfg")
    frontier.push("w1", [req("a")])
    request_id = frontier.lease("w1", 1).requests[0][0]
    child = [req("child")]
    # Never leased, leased by someone else: refused, and neither records nor children land.
    assert frontier.commit("w1", acks=[Ack("999", [record("x")], child)]).refused == 1
    assert frontier.commit("w2", acks=[Ack(request_id, [record("a")], child)]).refused == 1
    assert frontier.records_count() == 0
    assert frontier.status()["queued"] == 0
    # The holder's first ack stores; a second ack of the same request is refused.
    assert frontier.commit("w1", acks=[Ack(request_id, [record("a")], child)]).acked == 1
    assert frontier.commit("w1", acks=[Ack(request_id, [record("a")], child)]).refused == 1
    status = frontier.status()
    assert (status["records"], status["queued"], status["done"]) == (1, 1, 1)


def test_clean_leave_requeues_at_once(make_frontier: Callable[..., RedisFrontier]):
    frontier = make_frontier(lease_seconds=60)
    frontier.register("w1", "cfg")
    frontier.register("w2", "cfg")
    frontier.push("w1", [req("a"), req("b")])
    assert len(frontier.lease("w1", 2).requests) == 2
    assert frontier.leave("w1") == 2
    assert len(frontier.lease("w2", 5).requests) == 2


def test_another_configuration_is_refused_unless_forced(
    make_frontier: Callable[..., RedisFrontier], prefix: str
):
    frontier = make_frontier()
    frontier.register("w1", "sha256:one")
    with pytest.raises(FrontierConfigError, match=prefix):
        frontier.register("w2", "sha256:two")
    assert frontier.register("w2", "sha256:two", force=True) == "running"


@pytest.mark.parametrize("bad", ["", "has space", "br{ace}"])
def test_bad_prefix_is_a_clear_error(redis_url: str, bad: str) -> None:
    with pytest.raises(ValueError, match="CHECKPOINT_REDIS_PREFIX"):
        RedisFrontier(redis_url, bad)


def test_unreachable_server_is_a_connection_error() -> None:
    frontier = RedisFrontier("redis://127.0.0.1:1/0", "p")  # nothing listens on port 1
    with pytest.raises(redis.ConnectionError, match=r"127\.0\.0\.1:1"):
        frontier.register("w1", "cfg")


def test_bad_lease_or_url_is_a_clear_error(redis_url: str) -> None:
    with pytest.raises(ValueError, match="lease must be positive: 0"):
        RedisFrontier(redis_url, "p", lease_seconds=0)
    with pytest.raises(ValueError, match="redis://"):
        RedisFrontier("http://127.0.0.1:1/0", "p")


def test_export_is_sorted_atomic_and_claimed_once(
    make_frontier: Callable[..., RedisFrontier], tmp_path: Path
):
    frontier = make_frontier()
    frontier.register("w1", "cfg")
    frontier.register("w2", "cfg")
    frontier.push("w1", [req("a")])
    request_id = frontier.lease("w1", 1).requests[0][0]
    assert frontier.claim_export("w2") == "busy"  # a request is still held
    frontier.commit(
        "w1",
        acks=[
            Ack(
                request_id,
                [record("http://z/"), record("http://a/", error="boom"), record("http://m/é")],
            )
        ],
    )
    assert frontier.claim_export("w1") == "export"
    assert frontier.claim_export("w2") == "exporting"
    output = tmp_path / "out" / "records.jsonl"
    assert export_records(frontier, output) == (3, 1)
    assert frontier.finish_export("w1", str(output))
    assert frontier.claim_export("w2") == "done"
    lines = output.read_bytes().splitlines()
    assert [json.loads(line)["url"] for line in lines] == ["http://a/", "http://m/é", "http://z/"]
    failed = output.with_name("records.failed.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["url"] for line in failed] == ["http://a/"]
    assert output.stat().st_mode & 0o777 == 0o600
    assert not [p for p in output.parent.iterdir() if p.name.endswith(".tmp")]
    # A finished crawl takes no more work.
    frontier.push("w2", [req("late")])
    assert frontier.lease("w2", 5).requests == []


# Scrapy workers sharing one crawl -----------------------------------------------------------------

PAGES, SEED = 300, 7


@dataclass
class SharedSite:
    base_url: str
    work: Path
    reference: Path  # an uninterrupted local (non-Redis) discovery output
    reference_stats: dict[str, Any]  # what that run asked of the site


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedSite]:
    work = tmp_path_factory.mktemp("redis-crawl")
    with serving_demo_site(PAGES, SEED) as base_url:
        data = work / "local"
        log = work / "local.log"
        client.reset(base_url, transient=True)
        result = run_crawl(
            crawl_command("discovery", data, start_url=base_url + "/"), log_path=log, timeout=120
        )
        assert result.returncode == 0, log.read_text()[-3000:]
        yield SharedSite(base_url, work, data / DISCOVERY_OUTPUT, client.stats(base_url))


def redis_settings(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "CHECKPOINT_REDIS_URL": redis_url,
        "CHECKPOINT_REDIS_PREFIX": prefix,
        "CHECKPOINT_REDIS_LEASE_SECONDS": "2",
        **extra,
    }


def redis_output(data: Path, prefix: str, stage_output: Path = DISCOVERY_OUTPUT) -> Path:
    """Where a Redis crawl under ``prefix`` writing under ``data`` exports by default."""
    return default_output(data / stage_output, prefix)


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(command, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT)


def _frozen_holding_leases(frontier: RedisFrontier, worker: subprocess.Popen[bytes]) -> bool:
    """Stop ``worker`` (SIGSTOP) and say whether Redis shows it holding requests (its token
    names its pid); if not, let it go on (SIGCONT) and say False."""
    worker.send_signal(signal.SIGSTOP)
    holders = frontier.client.hvals(frontier.key("inflight"))
    if any(f":{worker.pid}:".encode() in holder for holder in holders):
        return True
    worker.send_signal(signal.SIGCONT)
    return False


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_workers_one_sigkilled_record_every_page_once(
    shared_site: SharedSite, redis_url: str, prefix: str
) -> None:
    reference = audit_jsonl(shared_site.reference)
    frontier = RedisFrontier(redis_url, prefix)
    logs = [shared_site.work / f"worker{i}-{prefix}.log" for i in (1, 2)]
    datas = [shared_site.work / f"worker{i}-{prefix}" for i in (1, 2)]
    settings = redis_settings(redis_url, prefix)
    workers = [
        start(
            crawl_command("discovery", d, start_url=shared_site.base_url + "/", settings=settings),
            log,
        )
        for d, log in zip(datas, logs, strict=True)
    ]
    try:
        # Kill worker 1 once ~40% of the pages are recorded, while both are crawling.
        target = int(reference.lines * 0.4)
        wait_for(lambda: frontier.records_count() >= target, 60, f"{target} records in Redis")
        assert workers[0].poll() is None and workers[1].poll() is None
        # Kill worker 1 while it holds leases: frozen (SIGSTOP) when Redis shows some of its own.
        wait_for(
            lambda: _frozen_holding_leases(frontier, workers[0]), 60, "worker 1 holding a lease"
        )
        in_flight = frontier.status()["in_flight"]
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        code = workers[1].wait(timeout=90)
        assert code == 0, logs[1].read_text()[-3000:]
        status = frontier.status()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        frontier.delete()
        frontier.close()
    out = audit_jsonl(redis_output(datas[1], prefix))
    assert not redis_output(datas[0], prefix).exists()  # the killed worker never exported
    assert status["state"] == "done"
    assert in_flight > 0
    assert status["requeued"] > 0, "the killed worker held no lease: the kill proved nothing"
    assert not out.torn
    assert out.bad_lines == 0
    assert out.doubled == 0, out.doubled_urls[:10]
    assert sorted(out.url_set - reference.url_set) == []
    assert sorted(reference.url_set - out.url_set) == []
    assert status["records"] == reference.lines
    assert list(out.urls) == sorted(out.urls)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_lone_worker_sigkilled_then_rerun_resumes(
    shared_site: SharedSite, redis_url: str, prefix: str
) -> None:
    """Every worker died: the same command resumes once the dead worker's leases expire."""
    reference = audit_jsonl(shared_site.reference)
    frontier = RedisFrontier(redis_url, prefix)
    data = shared_site.work / f"lone-{prefix}"
    log = shared_site.work / f"lone-{prefix}.log"
    command = crawl_command(
        "discovery",
        data,
        start_url=shared_site.base_url + "/",
        settings=redis_settings(redis_url, prefix),
    )
    client.reset(shared_site.base_url, transient=True)
    try:
        worker = start(command, log)
        try:
            target = reference.lines // 2
            wait_for(lambda: frontier.records_count() >= target, 60, f"{target} records")
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        killed = frontier.status()
        result = run_crawl(command, log_path=log, timeout=90)
        status = frontier.status()
    finally:
        frontier.delete()
        frontier.close()
    assert result.returncode == 0, log.read_text()[-3000:]
    assert killed["state"] == "running" and killed["in_flight"] > 0
    out = audit_jsonl(redis_output(data, prefix))
    assert not out.torn and out.bad_lines == 0
    assert out.doubled == 0, out.doubled_urls[:10]
    assert out.url_set == reference.url_set
    assert status["requeued"] >= killed["in_flight"]
    # Little redone: what the dead worker held (leased ahead or in flight), not the crawl.
    extra, _paths = refetched(client.stats(shared_site.base_url), shared_site.reference_stats)
    assert extra <= killed["in_flight"] + 10, (extra, killed)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_validation_on_redis_checks_every_discovered_url_once(
    shared_site: SharedSite, redis_url: str, prefix: str
) -> None:
    data = shared_site.work / f"validation-redis-{prefix}"
    log = data.with_suffix(".log")
    command = crawl_command(
        "validation",
        data,
        input_file=shared_site.reference,
        settings=redis_settings(redis_url, prefix),
    )
    result = run_crawl(command, log_path=log, timeout=90)
    frontier = RedisFrontier(redis_url, prefix)
    try:
        status = frontier.status()
    finally:
        frontier.delete()
        frontier.close()
    assert result.returncode == 0, log.read_text()[-3000:]
    discovered = {
        row["url"]: row for row in map(json.loads, shared_site.reference.read_bytes().splitlines())
    }
    lines = redis_output(data, prefix, VALIDATION_OUTPUT).read_bytes().splitlines()
    got = {row["url"]: row for row in map(json.loads, lines)}
    assert status["state"] == "done"
    assert len(lines) == len(got) == len(discovered)
    assert got.keys() == discovered.keys()
    # Retries and redirects stay with the worker holding the lease: a redirect is followed to
    # its end and recorded under the URL that was asked for.
    redirects = [url for url, row in discovered.items() if row.get("redirect_to")]
    assert redirects
    for url in redirects:
        chain = got[url]["redirect_chain"]
        assert chain[0] == url and chain[1] == discovered[url]["redirect_to"], got[url]
        assert got[url]["final_url"] == chain[-1]
    for url, row in discovered.items():
        if row["status"] == 200:
            assert got[url]["status"] == 200 and got[url]["ok"], got[url]


@pytest.mark.slow
def test_a_worker_with_another_configuration_is_refused(
    shared_site: SharedSite, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    frontier = RedisFrontier(redis_url, prefix)
    frontier.register("someone", "sha256:another-crawl")
    try:
        command = crawl_command(
            "discovery",
            tmp_path / "data",
            start_url=shared_site.base_url + "/",
            settings=redis_settings(redis_url, prefix),
        )
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        status = frontier.status()
    finally:
        frontier.delete()
        frontier.close()
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert len(errors) == 1 and prefix in errors[0] and "another configuration" in errors[0], errors
    assert status["scheduled"] == 0
    assert not (tmp_path / "data" / "processed").exists()


# tools.redis_crawl ------------------------------------------------------------------------------


def test_cli_status_export_and_reset(
    make_frontier: Callable[..., RedisFrontier],
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.redis_crawl import main

    frontier = make_frontier()
    frontier.register("w1", "cfg")
    frontier.push("w1", [req("a"), req("b")])
    request_id = frontier.lease("w1", 1).requests[0][0]
    frontier.commit("w1", acks=[Ack(request_id, [record("http://site/a")])])
    where = ["--redis-url", redis_url, "--prefix", prefix]

    assert main(["status", *where, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["done"], status["queued"], status["records"]) == (
        "running",
        1,
        1,
        1,
    )
    output = tmp_path / "out.jsonl"
    assert main(["export", *where, "--output", str(output)]) == 0
    assert [json.loads(line)["url"] for line in output.read_bytes().splitlines()] == [
        "http://site/a"
    ]
    # Without a terminal, reset refuses and deletes nothing.
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # noqa: SIM115
    assert main(["reset", *where]) == 1
    assert "--force" in capsys.readouterr().err
    assert frontier.status()["records"] == 1
    assert main(["reset", *where, "--force"]) == 0
    assert frontier.status()["state"] == "new"


def test_cli_bad_prefix_is_exit_2(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.redis_crawl import main

    assert main(["status", "--redis-url", redis_url, "--prefix", "two words"]) == 2
    assert "CHECKPOINT_REDIS_PREFIX" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_redis_settings_are_one_clear_error(redis_url: str, tmp_path: Path) -> None:
    command = crawl_command(
        "discovery",
        tmp_path / "data",
        start_url="http://127.0.0.1:9/",  # never fetched: the start is refused first
        settings=redis_settings(redis_url, "two words"),
    )
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert result.returncode == 1, result.stderr[-2000:]
    assert len(errors) == 1 and "'two words'" in errors[0], errors
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "processed").exists()


def finished_local_stage(checkpoints: Path, stage: str, output: Path) -> None:
    """A local stage of ``checkpoints`` that wrote two records (one failed, into the sidecar)
    to ``output`` and completed, as the orchestrator's stages leave it."""
    checkpoint = EnhancedCheckpoint(checkpoints / f"{stage}.json")
    checkpoint.attach_output(output)
    checkpoint.start(stage, total_items=2)
    checkpoint.update(processed=1, failed=1, index=0, failed_record={"url": "http://local/0"})
    checkpoint.update(processed=1, successful=1, index=1, record={"url": "http://local/1"})
    checkpoint.complete()
    checkpoint.close()


def test_cli_export_over_a_local_stage_file_is_refused(
    make_frontier: Callable[..., RedisFrontier],
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``export --output`` named a finished local stage's output or a checkpoint file of the
    local checkpoint directory (default ``data/checkpoints``): it used to replace it with the
    crawl's records (exit 0). Refused in one line naming the file and the stage, exit 1, every
    file byte-identical; another file, and the same one again, is written as before; the file
    the crawl itself exported to on this machine is its own and is written again."""
    from tools.redis_crawl import main

    frontier = make_frontier()
    frontier.register("w1", "cfg")
    frontier.push("w1", [req("a")])
    request_id = frontier.lease("w1", 1).requests[0][0]
    frontier.commit("w1", acks=[Ack(request_id, [record("http://site/a")])])
    monkeypatch.chdir(tmp_path)
    checkpoints = Path("data", "checkpoints")
    validated = Path("data", "processed", "stage02", "validation_output.jsonl")
    finished_local_stage(checkpoints, "stage2_validation", validated)
    where = ["--redis-url", redis_url, "--prefix", prefix]

    def files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in Path("data").rglob("*") if p.is_file()}

    before = files()
    for target, options, needle in (
        (validated, [], "the output of stage 'stage2_validation'"),
        (validated, ["--checkpoint-dir", str(checkpoints)], "the output of stage"),
        (checkpoints / "stage2_validation.json", [], "a checkpoint file of stage"),
    ):
        capsys.readouterr()
        assert main(["export", *where, "--output", str(target), *options]) == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"error: cannot write {target}: it is {needle}"), line
        assert "'stage2_validation'" in line and "nothing was written" in line, line
        assert files() == before

    copy = tmp_path / "copy.jsonl"
    for _ in range(2):  # a copy elsewhere, then the same file again
        assert main(["export", *where, "--output", str(copy)]) == 0
        assert copy.read_bytes() == b'{"url": "http://site/a"}\n'

    assert frontier.claim_export("w1") == "export"  # the crawl ended, exporting over it
    export_records(frontier, validated)
    assert frontier.finish_export("w1", f"{socket.gethostname()}:{validated.resolve()}")
    assert main(["export", *where, "--output", str(validated)]) == 0
    assert validated.read_bytes() == b'{"url": "http://site/a"}\n'


@pytest.mark.slow
def test_a_crawl_whose_output_is_a_local_stage_output_is_refused_at_its_start(
    make_frontier: Callable[..., RedisFrontier], redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """The README's Redis crawl after the quick start exported, by default, to the local stage
    1's output (``DATA_DIR/processed/stage01/discovery_output.jsonl``), and the worker that saw
    the end replaced that finished stage's records with the crawl's (exit 0). A local stage's
    file named by ``CHECKPOINT_OUTPUT_FILE`` is refused at the start, before the site or Redis
    is touched (``CHECKPOINT_FRESH`` deletes nothing): one error line naming the file, the stage
    and ``CHECKPOINT_OUTPUT_FILE``, exit 1, ``checkpoint_refused``, every local file
    byte-identical. By default the crawl exports to a file of its own,
    ``DATA_DIR/processed/redis/PREFIX/discovery_output.jsonl``."""
    data = tmp_path / "data"
    discovered = data / DISCOVERY_OUTPUT
    validated = data / VALIDATION_OUTPUT
    finished_local_stage(data / "checkpoints", "stage1_discovery", discovered)
    finished_local_stage(data / "checkpoints", "stage2_validation", validated)
    frontier = make_frontier()
    frontier.register("w0", "sha256:an-earlier-crawl")
    frontier.push("w0", [req("a")])
    request_id = frontier.lease("w0", 1).requests[0][0]
    frontier.commit("w0", acks=[Ack(request_id, [record("http://site/a")])])

    def files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}

    before, in_redis = files(), frontier.status()
    with serving_demo_site(5, SEED, profile="simple") as base_url:
        for target in (discovered, validated):
            settings = redis_settings(
                redis_url, prefix, CHECKPOINT_FRESH="True", CHECKPOINT_OUTPUT_FILE=str(target)
            )
            command = crawl_command("discovery", data, start_url=base_url + "/", settings=settings)
            result = subprocess.run(
                command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
            )
            errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
            assert result.returncode == 1, result.stderr[-3000:]
            assert len(errors) == 1, errors
            said = f"Redis crawl {prefix!r}: cannot write {target}: it is the output of stage"
            assert said in errors[0], errors[0]
            assert "set CHECKPOINT_OUTPUT_FILE to another file" in errors[0], errors[0]
            assert "'finish_reason': 'checkpoint_refused'" in result.stderr
            assert files() == before
            assert frontier.status() == in_redis
            assert client.stats(base_url)["requests"] == 0

        settings = redis_settings(redis_url, prefix, CHECKPOINT_FRESH="True")
        command = crawl_command("discovery", data, start_url=base_url + "/", settings=settings)
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
    own = data / "processed" / "redis" / prefix / "discovery_output.jsonl"
    assert {p: b for p, b in files().items() if p.is_relative_to(own.parent)}.keys() == {
        own,
        own.with_name("discovery_output.failed.jsonl"),
    }
    assert {p: b for p, b in files().items() if not p.is_relative_to(own.parent)} == before
    assert frontier.status()["state"] == "done"
    urls = [json.loads(line)["url"] for line in own.read_bytes().splitlines()]
    assert len(urls) > 1 and "http://site/a" not in urls
