"""Runs that must not throw away or strand finished work: a refused run with another demo
site, and an explicit --store that is not the one holding the data dir's checkpoints.

Real orchestrator processes on the demo site, as in ``tests/test_orchestrator.py`` (whose
helpers and uninterrupted reference run this module uses).
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from common import EnhancedCheckpoint
from common.manager import UnifiedCheckpointManager
from common.stores import open_store
from common.stores.sqlite import DATABASE_NAME
from tests._enrich_stage import write_stage2
from tests._waiting import wait_for
from tests.test_orchestrator import (
    PAGES,
    RUN_TIMEOUT,
    SEED,
    STAGES,
    Reference,
    Spawned,
    assert_same_as_reference,
    checkpoint,
    descendants,
    line_count,
    no_traceback,
    output_path,
    reference,  # noqa: F401 (a fixture)
    run_orchestrator,
    running_stage,
    site,  # noqa: F401 (a fixture)
    spawn,  # noqa: F401 (a fixture)
    urls_once,
    wait_all_gone,
)
from tools.demo_site import stop_demo_site_process
from tools.orchestrator.demo import remembered_port, start_demo_site


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def digest(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` but the lock files (they are not data)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


def one_error_line(result: object) -> str:
    assert getattr(result, "returncode", None) == 1, result
    stderr: str = getattr(result, "stderr", "")
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert "Traceback" not in stderr
    return lines[0]


def test_a_refused_run_with_another_site_leaves_the_paused_crawl_resumable(
    reference: Reference,  # noqa: F811
    spawn: Callable[..., Spawned],  # noqa: F811
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "paused"
    run = spawn(data_dir)
    wait_for(
        lambda: (
            running_stage(run.pid) == STAGES[0]
            and line_count(output_path(data_dir, STAGES[0])) >= 0.3 * reference.lines[STAGES[0]]
        ),
        RUN_TIMEOUT,
        "discovery to write 30% of its records",
    )
    children = descendants(run.pid)
    run.process.send_signal(signal.SIGINT)
    assert run.wait(120) == 130, run.err()[-3000:]
    wait_all_gone(children, data_dir)
    assert checkpoint(data_dir, STAGES[0])["status"] == "paused"
    port = remembered_port(data_dir, PAGES, SEED)
    assert port is not None

    # By mistake, another site (other --pages, then other --seed): refused, the checkpoints
    # are of the first site.
    for other in (("--pages", str(PAGES + 7)), ("--seed", str(SEED + 1))):
        refused = run_orchestrator(data_dir, *other)
        assert refused.returncode == 1, refused.stderr[-3000:]
        assert "configuration has changed" in refused.stderr, refused.stderr[-3000:]
        no_traceback(refused)
        assert checkpoint(data_dir, STAGES[0])["status"] == "paused"
        assert remembered_port(data_dir, PAGES, SEED) == port  # the first site's port is kept
    other_port = remembered_port(data_dir, PAGES + 7, SEED)
    assert other_port is not None and other_port != port
    sites = json.loads((data_dir / "demo_site.json").read_text())["sites"]
    assert len({entry["port"] for entry in sites}) == len(sites) == 3  # one port per site

    # The original command still resumes, and completes as an uninterrupted run does.
    resumed = run_orchestrator(data_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_as_reference(data_dir, reference, by_path=True)
    assert checkpoint(data_dir, STAGES[0])["run_count"] == 2
    assert remembered_port(data_dir, PAGES, SEED) == port


def test_another_site_keeps_the_port_of_a_site_in_the_old_one_site_format(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    port = free_port()
    (data_dir / "demo_site.json").write_text(
        json.dumps({"port": port, "pages": PAGES, "seed": SEED})
    )
    assert remembered_port(data_dir, PAGES, SEED) == port  # the old format is read
    with (tmp_path / "site.log").open("w") as log:
        other = start_demo_site(data_dir, PAGES + 7, SEED, log)
    stop_demo_site_process(other.process)
    assert not other.base_url.endswith(f":{port}")
    assert remembered_port(data_dir, PAGES, SEED) == port
    assert other.base_url == f"http://127.0.0.1:{remembered_port(data_dir, PAGES + 7, SEED)}"


def test_switching_the_store_of_a_finished_data_dir_is_refused_and_fresh_starts_over(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "finished"
    done = run_orchestrator(data_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    cps = data_dir / "checkpoints"
    urls = {stage: set(urls_once(output_path(data_dir, stage))) for stage in STAGES}
    before = digest(data_dir)

    line = one_error_line(run_orchestrator(data_dir, "--store", "sqlite"))
    assert line == (
        f"error: {cps} holds json checkpoints (3 stages); omit --store to use them, or pass "
        "--fresh to start over with sqlite (nothing was changed)"
    )
    line = one_error_line(
        run_orchestrator(data_dir, "--store", "sqlite", "--fresh", stage="validation")
    )
    assert line.endswith(
        "would also forget stage1_discovery, stage3_async_enrichment: omit --store to use them, "
        "or pass --fresh with --stage all (nothing was changed)"
    ), line
    assert digest(data_dir) == before  # byte for byte: checkpoints, outputs, logs

    # --fresh starts every stage over in the sqlite store; the JSON checkpoints are gone, so
    # the next run without --store finds the sqlite ones and has nothing to do.
    fresh = run_orchestrator(data_dir, "--store", "sqlite", "--fresh")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert not list(cps.glob("stage*.json"))
    store = open_store("sqlite", cps)
    manager = UnifiedCheckpointManager(cps, store=store)
    try:
        assert {s: manager.inspect(s).status for s in STAGES} == dict.fromkeys(STAGES, "completed")
    finally:
        manager.close()
        store.close()
    for stage in STAGES:
        assert set(urls_once(output_path(data_dir, stage))) == urls[stage], stage
    again = run_orchestrator(data_dir)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-3000:]

    # The other way round: the sqlite data dir with --store json.
    before = digest(data_dir)
    line = one_error_line(run_orchestrator(data_dir, "--store", "json"))
    assert line == (
        f"error: {cps} holds sqlite checkpoints (3 stages); omit --store to use them, or pass "
        "--fresh to start over with json (nothing was changed)"
    )
    assert digest(data_dir) == before
    # And --fresh switches back: the database goes, the JSON files hold the new run.
    fresh = run_orchestrator(data_dir, "--store", "json", "--fresh")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert not list(cps.glob(f"{DATABASE_NAME}*"))
    assert {s: checkpoint(data_dir, s)["status"] for s in STAGES} == dict.fromkeys(
        STAGES, "completed"
    )
    for stage in STAGES:
        assert set(urls_once(output_path(data_dir, stage))) == urls[stage], stage


def test_a_refused_fresh_switch_of_one_stage_keeps_the_old_checkpoints(tmp_path: Path) -> None:
    """--fresh --store sqlite on a data dir whose JSON checkpoints are the enrichment stage's
    alone: a run refused over that stage's input (missing, or rejected by the child) leaves
    them byte for byte (they used to be gone before the refusal); one that goes ahead
    switches."""
    data_dir = tmp_path / "data"
    cps = data_dir / "checkpoints"
    stage = STAGES[2]
    old = EnhancedCheckpoint(cps / f"{stage}.json")
    old.start(stage, total_items=1)
    old.update(processed=1, successful=1, index=0, last_item="item-0")
    old.complete()
    old.close()
    before = digest(cps)
    switch = ("--store", "sqlite", "--fresh")

    def refused() -> str:
        """The error line of a refused run (its log lines above it say the demo site's
        address)."""
        result = run_orchestrator(data_dir, *switch, stage="enrichment")
        assert result.returncode == 1, result.stderr[-3000:]
        no_traceback(result)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr[-3000:]
        return errors[0]

    line = refused()
    assert line.startswith(f"error: cannot run {stage}: its input") and "does not exist" in line
    assert digest(cps) == before
    stage2 = data_dir / "processed/stage02/validation_output.jsonl"
    stage2.parent.mkdir(parents=True)
    stage2.write_text("not json\n")
    line = refused()
    assert f"{stage2}:1: not a validation record" in line, line
    assert digest(cps) == before

    stage2.unlink()
    stage2.parent.rmdir()
    write_stage2(data_dir, ["http://127.0.0.1:1/a"])
    went_ahead = run_orchestrator(data_dir, *switch, stage="enrichment")
    no_traceback(went_ahead)
    assert (cps / DATABASE_NAME).is_file(), went_ahead.stderr[-3000:]
    assert not list(cps.glob("*.json")), sorted(p.name for p in cps.iterdir())
