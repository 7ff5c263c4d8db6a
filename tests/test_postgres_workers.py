"""Enrichment workers sharing one stage through PostgreSQL, as real processes.

Four workers (``python -m enrich --workers 4``) enrich the demo site; one is SIGKILLed while it
holds a leased batch (chosen by a database condition, not a delay). The stage must still finish
with every input page exactly once across the output and its failed sidecar, the killed
worker's batch taken over by another worker, and the aggregated status saying so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from common import CheckpointStatus, EnhancedCheckpoint
from common.work_queue import WorkQueue
from enrich.async_enrichment import STAGE_NAME
from tests._demo_site import serving_demo_site
from tests._live_writer import OUTPUT_WRITER, live_writer, release
from tests._waiting import wait_for
from tools.demo_site import build_site, client

ROOT = Path(__file__).resolve().parents[1]
PAGES = 300
SEED = 7
LEASE_SECONDS = 3.0
RUN_TIMEOUT = 120.0


@dataclass
class Site:
    base_url: str
    urls: list[str]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    # ~40 ms a page: with 4 fetches in flight per worker a batch lasts long enough to be
    # caught in the middle, and the whole stage still takes a few seconds.
    with serving_demo_site(PAGES, SEED, latency_ms=40) as base_url:
        yield Site(base_url, build_site(PAGES, SEED).expected_ok_urls(base_url))


def fetch_counts(base_url: str) -> Counter[str]:
    return Counter(client.stats(base_url)["paths"])


def reset_counts(base_url: str) -> None:
    client.reset(base_url)


def write_validation(path: Path, urls: list[str]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for url in urls:
            record = {"url": url, "ok": True, "status": 200, "content_type": "text/html"}
            handle.write(json.dumps({**record, "final_url": url}) + "\n")


class Stage:
    def __init__(self, tmp_path: Path, site: Site, dsn: str) -> None:
        self.dir = tmp_path
        self.dsn = dsn
        self.input = tmp_path / "validation.jsonl"
        self.output = tmp_path / "out" / "enrichment_output.jsonl"
        self.failed = tmp_path / "out" / "enrichment_output.failed.jsonl"
        self.checkpoints = tmp_path / "checkpoints"
        self.log = tmp_path / "starter.log"
        write_validation(self.input, site.urls)

    def start(self, workers: int = 4, *options: str) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "enrich", "--workers", str(workers),
            "--input", str(self.input), "--output", str(self.output),
            "--checkpoint-dir", str(self.checkpoints),
            "--concurrency", "4", "--batch-size", "4", "--lease-seconds", str(LEASE_SECONDS),
            *options,
        ]  # fmt: skip
        env = {**os.environ, "RESUMABLE_CRAWL_DSN": self.dsn}
        with self.log.open("ab") as log:
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)

    def finish(self, process: subprocess.Popen[bytes], expect: int = 0) -> None:
        try:
            code = process.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        assert code == expect, f"starter exited {code}:\n{self.log.read_text()[-4000:]}"

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def output_urls(self) -> list[str]:
        urls = []
        for path in (self.output, self.failed):
            data = path.read_bytes()
            assert data == b"" or data.endswith(b"\n"), f"torn last line in {path}"
            urls += [json.loads(line)["url"] for line in data.splitlines()]
        return urls


def assert_exactly_once(stage: Stage, site: Site) -> None:
    urls = stage.output_urls()
    doubled = {url: n for url, n in Counter(urls).items() if n > 1}
    assert not doubled, f"written twice: {list(doubled)[:5]}"
    assert set(urls) == set(site.urls), (
        f"missing {sorted(set(site.urls) - set(urls))[:5]}, extra {sorted(set(urls) - set(site.urls))[:5]}"
    )


def _connection_ports(pid: int, server_port: int) -> set[int]:
    """The local ports of process ``pid``'s TCP connections to ``server_port`` (its database
    sessions, as ``pg_stat_activity.client_port`` shows them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    assert ports, f"worker {pid} has no connection to port {server_port}"
    return ports


@pytest.mark.slow
def test_four_workers_one_sigkilled_mid_batch_every_page_once(
    site: Site, tmp_path: Path, postgres_dsn: str
) -> None:
    reset_counts(site.base_url)
    stage = Stage(tmp_path, site, postgres_dsn)
    starter = stage.start(workers=4)
    try:
        wait_for(
            lambda: (
                stage.query("SELECT to_regclass('rcq_workers')")[0][0] is not None
                and len(stage.query("SELECT 1 FROM rcq_workers")) == 4
            ),
            60.0,
            "four workers to register",
        )
        server_port = stage.query("SELECT inet_server_port()")[0][0]

        def frozen_holding_a_batch() -> tuple[str, int, set[int]] | None:
            """A worker in the middle of a batch, stopped (SIGSTOP) while it holds leases.

            Chosen while it held a lease, it may have committed its batch before the stop (it
            holds none between batches): once stopped and its sessions no longer run a
            statement, what it holds is final; if that is nothing, it goes on (SIGCONT)."""
            found = stage.query(
                "SELECT w.worker, w.pid FROM rcq_workers w "
                "WHERE EXISTS (SELECT 1 FROM rcq_items i WHERE i.worker = w.worker "
                "              AND i.state = 'leased') "
                "  AND EXISTS (SELECT 1 FROM rcq_items i WHERE i.worker = w.worker "
                "              AND i.state IN ('done', 'failed')) "
                "  AND (SELECT count(*) FROM rcq_items WHERE state = 'pending') > 60 "
                "LIMIT 1"
            )
            if not found:
                return None
            worker, worker_pid = found[0]
            sessions = _connection_ports(worker_pid, server_port)
            os.kill(worker_pid, signal.SIGSTOP)
            holding = False
            try:
                wait_for(
                    lambda: (
                        not stage.query(
                            "SELECT 1 FROM pg_stat_activity WHERE client_port = ANY(%s) "
                            "AND state = 'active'",
                            sorted(sessions),
                        )
                    ),
                    60.0,
                    "the stopped worker's statements to finish",
                )
                holding = bool(
                    stage.query(
                        "SELECT 1 FROM rcq_items WHERE worker = %s AND state = 'leased'", worker
                    )
                )
            finally:
                if not holding:  # it goes on, and a failed wait leaves no stopped process
                    os.kill(worker_pid, signal.SIGCONT)
            return (worker, worker_pid, sessions) if holding else None

        victim, pid, sessions = wait_for(
            frozen_holding_a_batch, 60.0, "a worker with a batch in flight"
        )
        os.kill(pid, signal.SIGKILL)
        # Read its leases once the server has ended its sessions (an open transaction of it
        # rolled back), so what it committed is final.
        wait_for(
            lambda: (
                not stage.query(
                    "SELECT 1 FROM pg_stat_activity WHERE client_port = ANY(%s)", sorted(sessions)
                )
            ),
            60.0,
            "the killed worker's sessions to end",
        )
        # Its leases stay its own until they expire and are claimed (>= 2/3 of a lease away).
        orphaned = {
            key for (key,) in stage.query(
                "SELECT key FROM rcq_items WHERE worker = %s AND state = 'leased'", victim
            )
        }  # fmt: skip
        assert orphaned, "the killed worker held no batch"
        stage.finish(starter)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()

    assert_exactly_once(stage, site)

    # Takeover: every orphaned item was finished by another worker, on a second attempt.
    rows = stage.query(
        "SELECT key, worker, attempts, state FROM rcq_items WHERE key = ANY(%s)", list(orphaned)
    )
    assert len(rows) == len(orphaned)
    for key, worker, attempts, state in rows:
        assert state in ("done", "failed") and worker != victim and attempts == 2, (
            key,
            worker,
            attempts,
        )
    # Little redone: beyond the demo site's transient 503s, only the orphaned pages twice.
    counts = fetch_counts(site.base_url)
    transient = set(build_site(PAGES, SEED).transient_paths())
    refetched = {path for path, n in counts.items() if n > (2 if path in transient else 1)}
    orphaned_paths = {key[len(site.base_url) :] for key in orphaned}
    assert refetched <= orphaned_paths, sorted(refetched - orphaned_paths)[:5]

    # Aggregated status: the engine record, and the queue's own view of every worker.
    checkpoint = EnhancedCheckpoint(stage.checkpoints / f"{STAGE_NAME}.json")
    assert checkpoint.status is CheckpointStatus.COMPLETED
    progress = checkpoint.progress_snapshot()
    assert progress.processed == progress.total == len(site.urls)
    shared = checkpoint.state.metadata["work_queue"]
    assert len(shared["workers"]) == 4
    # "Silent" is a heartbeat older than a lease: wait for it rather than race it.
    with WorkQueue(postgres_dsn, STAGE_NAME) as queue:
        wait_for(
            lambda: {w.worker: w.alive for w in queue.progress().workers}[victim] is False,
            60.0,
            "the killed worker to be reported silent",
        )
    status = subprocess.run(
        [sys.executable, "-m", "enrich.worker", "--status", "--json"],
        cwd=ROOT,
        env={**os.environ, "RESUMABLE_CRAWL_DSN": postgres_dsn},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(status.stdout)
    assert (report["processed"], report["remaining"], report["exported"]) == (
        len(site.urls),
        0,
        True,
    )
    states = {w["worker"]: w["state"] for w in report["workers"]}
    assert states.pop(victim) == "silent"
    assert set(states.values()) == {"stopped"}
    assert sum(w["done"] + w["failed"] for w in report["workers"]) == len(site.urls)


@pytest.mark.slow
def test_sigterm_pauses_sigkill_recovers_rerun_writes_every_page_once(
    site: Site, tmp_path: Path, postgres_dsn: str
) -> None:
    stage = Stage(tmp_path, site, postgres_dsn)
    starter = stage.start(workers=1)
    try:
        wait_for(
            lambda: (
                stage.query("SELECT to_regclass('rcq_items')")[0][0] is not None
                and stage.query("SELECT count(*) FROM rcq_items WHERE state = 'done'")[0][0] > 20
            ),
            60.0,
            "some pages done",
        )
        starter.send_signal(signal.SIGTERM)
        stage.finish(starter, expect=143)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
    assert stage.query("SELECT count(*) FROM rcq_items WHERE state = 'leased'") == [(0,)]
    assert stage.query("SELECT max(attempts) FROM rcq_items") == [(1,)]
    assert not stage.output.exists(), "exported before the stage was finished"
    checkpoint = EnhancedCheckpoint(stage.checkpoints / f"{STAGE_NAME}.json")
    assert checkpoint.status is CheckpointStatus.PAUSED
    checkpoint.close()

    # SIGKILL of the starter, a batch in flight: its worker dies with it, leases and all.
    def done() -> int:
        return int(stage.query("SELECT count(*) FROM rcq_items WHERE state = 'done'")[0][0])

    done_before = done()
    starter = stage.start(workers=1)
    try:
        wait_for(
            lambda: (
                done() > done_before + 20
                and stage.query("SELECT count(*) FROM rcq_items WHERE state = 'leased'")[0][0] > 0
            ),
            60.0,
            "more pages done and a batch in flight",
        )
        starter.kill()
        starter.wait()
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
    pids = [pid for (pid,) in stage.query("SELECT pid FROM rcq_workers")]
    wait_for(
        lambda: not any(alive(pid) for pid in pids), 60.0, "the workers to die with the starter"
    )
    checkpoint = EnhancedCheckpoint(stage.checkpoints / f"{STAGE_NAME}.json")
    assert checkpoint.status is CheckpointStatus.RECOVERING
    checkpoint.close()

    stage.finish(stage.start(workers=1))
    assert_exactly_once(stage, site)
    # Only what the killed worker held was claimed again.
    assert stage.query("SELECT max(attempts) <= 2 FROM rcq_items") == [(True,)]

    stage.log.write_bytes(b"")
    stage.finish(stage.start(workers=1))  # once more: nothing to do, and it says so
    assert f"{STAGE_NAME}: nothing to do, already completed" in stage.log.read_text()
    assert_exactly_once(stage, site)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped) is dead too.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ")[-1][:1] != "Z"


@pytest.mark.slow
def test_worker_joined_by_the_documented_command_does_the_stage(
    site: Site, tmp_path: Path, postgres_dsn: str
) -> None:
    """``--workers 0``: the starter only loads, watches and exports; a worker started apart,
    as on another machine, does every page."""
    stage = Stage(tmp_path, Site(site.base_url, site.urls[:60]), postgres_dsn)
    starter = stage.start(workers=0)
    try:
        wait_for(
            lambda: (
                stage.query("SELECT to_regclass('rcq_stages')")[0][0] is not None
                and stage.query("SELECT count(*) FROM rcq_stages") == [(1,)]
            ),
            60.0,
            "the starter to load the stage",
        )
        joined = subprocess.run(
            [sys.executable, "-m", "enrich.worker", "--stage", STAGE_NAME],
            cwd=tmp_path,  # nothing shared with the starter but the database
            env={**os.environ, "RESUMABLE_CRAWL_DSN": postgres_dsn},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        assert joined.returncode == 0, joined.stderr[-3000:]
        stage.finish(starter)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
    assert_exactly_once(stage, Site(site.base_url, site.urls[:60]))
    assert "done: 60 items" in joined.stderr


def test_worker_without_a_loaded_stage_is_one_clear_error(postgres_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "enrich.worker", "--dsn", postgres_dsn],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"stage '{STAGE_NAME}' is not loaded in the work queue at postgresql://" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_without_a_database_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RESUMABLE_CRAWL_DSN"}
    result = subprocess.run(
        [sys.executable, "-m", "enrich", "--workers", "2", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers needs a database: give --dsn or set RESUMABLE_CRAWL_DSN" in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_an_unreachable_work_queue_refuses_the_run_with_nothing_written(tmp_path: Path) -> None:
    """The server is named before the stage's record starts: that start used to write a
    ``failed`` record beside the directory's other stages, and with ``--fresh --store sqlite``
    remove the stage's JSON checkpoint, before the queue was reached."""
    validated = tmp_path / "processed" / "stage02" / "validation_output.jsonl"
    validated.parent.mkdir(parents=True)
    write_validation(validated, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    beside, switching = tmp_path / "beside", tmp_path / "switching"
    complete_local_stage(beside, "stage2_validation", tmp_path / "v.jsonl", ["http://h/a"])
    complete_local_stage(switching, STAGE_NAME, tmp_path / "e.jsonl", ["http://h/a"])
    for checkpoints, extra in ((beside, []), (switching, ["--fresh", "--store", "sqlite"])):
        before = {p: p.read_bytes() for p in checkpoints.iterdir() if p.is_file()}
        result = subprocess.run(
            [
                sys.executable, "-m", "enrich", "--workers", "2",
                "--dsn", "postgresql://nobody@127.0.0.1:1/x",
                "--data-dir", str(tmp_path), "--checkpoint-dir", str(checkpoints), *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert "error: cannot reach the work queue at postgresql://nobody@127.0.0.1:1/x" in (
            result.stderr
        )
        assert "Error count" not in result.stderr, result.stderr
        files = {p for p in checkpoints.iterdir() if p.is_file()}
        assert files == set(before), sorted(p.name for p in files ^ set(before))
        assert {p: p.read_bytes() for p in files} == before


@pytest.mark.slow
def test_orchestrator_enrichment_with_workers_exports_every_page(
    tmp_path: Path, postgres_dsn: str
) -> None:
    pages, seed = 120, 3
    port = free_port()
    data_dir = tmp_path / "data"
    (data_dir / "processed/stage02").mkdir(parents=True)
    # The orchestrator starts the demo site on the port it remembers for this data directory.
    (data_dir / "demo_site.json").write_text(
        json.dumps({"port": port, "pages": pages, "seed": seed})
    )
    urls = build_site(pages, seed).expected_ok_urls(f"http://127.0.0.1:{port}")
    write_validation(data_dir / "processed/stage02/validation_output.jsonl", urls)
    env = {k: v for k, v in os.environ.items() if k != "RESUMABLE_CRAWL_DSN"}
    command = [
        sys.executable, "-m", "tools.orchestrator", "--env", "development",
        "--stage", "enrichment", "--data-dir", str(data_dir), "--pages", str(pages),
        "--seed", str(seed), "--workers", "2", "--dsn", postgres_dsn, "--no-live",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    output = data_dir / "processed/stage03/enrichment_output.jsonl"
    lines = output.read_text().splitlines()
    assert sorted(json.loads(line)["url"] for line in lines) == sorted(urls)
    assert re.search(r"^ enrichment +completed", result.stdout, re.MULTILINE), result.stdout
    log = (data_dir / "logs/stage3_async_enrichment.log").read_text()
    assert "Worker " in log and "Exported " in log


def test_orchestrator_workers_without_a_database_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.orchestrator import main

    monkeypatch.delenv("RESUMABLE_CRAWL_DSN", raising=False)
    code = main(["--stage", "enrichment", "--workers", "2", "--data-dir", str(tmp_path / "d")])
    assert code == 2
    assert "--workers needs a database" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_export_beside_a_live_writer_of_the_output_is_refused_then_rerun(
    site: Site, tmp_path: Path, postgres_dsn: str
) -> None:
    """A local stage of another checkpoint directory writes the file the shared stage exports
    to: the export is refused in one line naming the file and that process (the file as it
    has it), the rows stay in the queue, and the same command exports them later."""
    urls = site.urls[:20]
    stage = Stage(tmp_path, Site(site.base_url, urls), postgres_dsn)
    with live_writer(OUTPUT_WRITER, tmp_path / "local" / "A.json", stage.output) as writer:
        held = stage.output.read_bytes()
        stage.finish(stage.start(workers=1), expect=1)
        errors = [line for line in stage.log.read_text().splitlines() if "error:" in line]
        assert len(errors) == 1, stage.log.read_text()[-3000:]
        assert str(stage.output) in errors[0] and f"process {writer.pid}" in errors[0]
        assert stage.output.read_bytes() == held
        assert release(writer) == 0
    stage.output.unlink()  # the user's call: that stage's file goes, this one's comes
    stage.finish(stage.start(workers=1))
    assert_exactly_once(stage, Site(site.base_url, urls))


def complete_local_stage(checkpoints: Path, stage: str, output: Path, urls: list[str]) -> None:
    """A local stage of ``checkpoints`` that wrote ``urls`` to ``output`` (one of them as a
    failure, into its sidecar) and completed, as the orchestrator's stages 1 and 2 leave it."""
    checkpoint = EnhancedCheckpoint(checkpoints / f"{stage}.json")
    checkpoint.attach_output(output)
    checkpoint.start(stage, total_items=len(urls), fresh=True)
    for index, url in enumerate(urls):
        if index == 0:
            checkpoint.update(processed=1, failed=1, index=index, failed_record={"url": url})
        else:
            checkpoint.update(processed=1, successful=1, index=index, record={"url": url})
    checkpoint.complete()
    checkpoint.close()


def read_files(*paths: Path) -> dict[Path, bytes | None]:
    return {path: path.read_bytes() if path.exists() else None for path in paths}


def the_error_line(stage: Stage) -> str:
    text = stage.log.read_text()
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, text[-3000:]
    return errors[0]


def test_an_export_onto_another_checkpoints_finished_output_is_refused_before_anything_runs(
    site: Site, tmp_path: Path, postgres_dsn: str
) -> None:
    """``--output`` names the file a finished stage of another checkpoint directory wrote (the
    validation output, a typo away) and nobody writes it now: the export used to replace it,
    the other stage's records gone and exit 0. The start is refused in one line naming the
    file and the way out, before a URL is loaded or fetched, the file and its sidecar
    byte-identical; --fresh overwrites it when asked in so many words, and the stage's own
    output is exported again after more work as before."""
    urls = site.urls[:20]
    stage = Stage(tmp_path, Site(site.base_url, urls), postgres_dsn)
    validated = tmp_path / "stage02" / "validation_output.jsonl"
    sidecar = validated.with_name("validation_output.failed.jsonl")
    complete_local_stage(tmp_path / "validation", "stage2_validation", validated, site.urls)
    before = read_files(validated, sidecar)
    stage.output, stage.failed = validated, sidecar
    reset_counts(site.base_url)

    stage.finish(stage.start(1), expect=1)
    error = the_error_line(stage)
    assert f"error: stage '{STAGE_NAME}' cannot start on {validated}: it holds" in error
    assert "never wrote" in error and "--fresh" in error and "nothing was changed" in error
    assert read_files(validated, sidecar) == before
    assert stage.query("SELECT to_regclass('rcq_items')") == [(None,)], "loaded all the same"
    assert not fetch_counts(site.base_url), "fetched all the same"

    stage.finish(stage.start(1, "--fresh"))  # the way out the message names
    assert_exactly_once(stage, Site(site.base_url, urls))

    more = site.urls[:30]  # more work on the same output: exported again, not refused
    write_validation(stage.input, more)
    stage.finish(stage.start(1))
    assert_exactly_once(stage, Site(site.base_url, more))


def test_an_export_onto_a_file_another_stage_of_the_directory_wrote_names_that_stage(
    site: Site, tmp_path: Path, postgres_dsn: str
) -> None:
    """A stage of the same checkpoint directory wrote the file, then moved to another one (its
    history still names it): the export's start is refused naming that stage, the file kept."""
    stage = Stage(tmp_path, Site(site.base_url, site.urls[:10]), postgres_dsn)
    old = tmp_path / "stage02" / "validation_output.jsonl"
    complete_local_stage(stage.checkpoints, "stage2_validation", old, site.urls[:5])
    complete_local_stage(stage.checkpoints, "stage2_validation", tmp_path / "v2.jsonl", site.urls)
    before = read_files(old)
    stage.output, stage.failed = old, old.with_name("validation_output.failed.jsonl")

    stage.finish(stage.start(1), expect=1)
    error = the_error_line(stage)
    assert f"cannot start on {old}" in error, error
    assert f"stage 'stage2_validation' in {stage.checkpoints} wrote it" in error, error
    assert read_files(old) == before
