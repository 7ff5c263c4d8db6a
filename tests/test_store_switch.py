"""An explicit --store that is not the store holding a directory's checkpoints is refused.

The checkpoint CLI and ``python -m enrich`` run as subprocesses over checkpoint directories
built with the engine (JSON files, or the SQLite database); the orchestrator's side is in
``tests/test_orchestrator_stores.py``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from common import EnhancedCheckpoint
from common.stores.sqlite import DATABASE_NAME
from tests._demo_site import serving_demo_site
from tests._enrich_stage import run_enrich, write_stage2
from tests._live_writer import CHECKPOINT_WRITER, OUTPUT_WRITER, live_writer, release
from tools.demo_site import build_site

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("stage1_discovery", "stage2_validation", "stage3_async_enrichment")


def make_checkpoints(directory: Path, store: str, stages: tuple[str, ...] = STAGES) -> None:
    """One completed record per stage in ``store`` under ``directory``."""
    for stage in stages:
        checkpoint = EnhancedCheckpoint(directory / f"{stage}.json", store=store)
        checkpoint.start(stage, total_items=3)
        for index in range(3):
            checkpoint.update(processed=1, successful=1, index=index, last_item=f"item-{index}")
        checkpoint.complete()
        checkpoint.close()


def digest(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` but the lock files (they are not data)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, command)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("held", "other", "command"),
    [
        ("json", "sqlite", ("list",)),
        ("json", "sqlite", ("show", "discovery")),
        ("sqlite", "json", ("list",)),
        ("sqlite", "json", ("show", "discovery")),
    ],
)
def test_cli_with_the_other_store_names_what_the_directory_holds(
    tmp_path: Path, held: str, other: str, command: tuple[str, ...]
) -> None:
    cps = tmp_path / "cps"
    make_checkpoints(cps, held)
    before = digest(cps)
    cli = ("-m", "tools.checkpoint_cli", "--checkpoint-dir", cps)
    line = one_error_line(run(*cli, "--store", other, *command))
    assert line == (
        f"error: {cps} holds {held} checkpoints (3 stages); omit --store "
        f"(or pass --store {held}) to read them"
    )
    assert digest(cps) == before
    # Omitting --store, or naming the store it holds, reads them.
    for store in ((), ("--store", held)):
        listed = run(*cli, *store, "list")
        assert listed.returncode == 0, listed.stderr
        assert all(stage in listed.stdout for stage in STAGES), listed.stdout


def test_cli_on_an_empty_directory_takes_any_store(tmp_path: Path) -> None:
    cps = tmp_path / "cps"
    cps.mkdir()
    result = run(
        "-m", "tools.checkpoint_cli", "--checkpoint-dir", cps, "--store", "sqlite", "list"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (cps / DATABASE_NAME).exists()  # reading never creates the database


def enrich_command(data_dir: Path, *extra: str) -> list[str | Path]:
    return ["-m", "enrich", "--data-dir", data_dir, *extra]


@pytest.mark.parametrize(("held", "other"), [("json", "sqlite"), ("sqlite", "json")])
def test_enrich_with_the_other_store_is_refused_and_changes_nothing(
    tmp_path: Path, held: str, other: str
) -> None:
    data_dir = tmp_path / "data"
    cps = data_dir / "checkpoints"
    make_checkpoints(cps, held)
    validation = data_dir / "processed/stage02/validation_output.jsonl"
    validation.parent.mkdir(parents=True)
    validation.write_text('{"url": "http://127.0.0.1:1/a", "status": 200, "ok": true}\n')
    output = data_dir / "processed/stage03/enrichment_output.jsonl"
    output.parent.mkdir(parents=True)
    output.write_text('{"url": "http://127.0.0.1:1/a"}\n')
    before = digest(data_dir)
    line = one_error_line(run(*enrich_command(data_dir, "--store", other)))
    assert line == (
        f"error: {cps} holds {held} checkpoints (3 stages); omit --store to use them, or give "
        f"this stage a --checkpoint-dir of its own to start over with {other} (nothing was "
        "changed)"
    )
    # --fresh would forget the other stages too: still refused, naming them.
    line = one_error_line(run(*enrich_command(data_dir, "--store", other, "--fresh")))
    assert "would also forget stage1_discovery, stage2_validation" in line, line
    assert digest(data_dir) == before


def test_enrich_on_a_checkpoint_dir_of_its_own_switches_with_fresh(tmp_path: Path) -> None:
    with serving_demo_site(30, 5) as base:
        urls = build_site(30, 5).expected_ok_urls(base)[:8]
        write_stage2(tmp_path, urls)
        output = tmp_path / "processed/stage03/enrichment_output.jsonl"
        cps = tmp_path / "own"
        first = run_enrich("--data-dir", str(tmp_path), "--checkpoint-dir", str(cps))
        assert first.returncode == 0, first.stderr[-2000:]
        written = output.read_bytes()
        line = one_error_line(
            run_enrich(
                "--data-dir", str(tmp_path), "--checkpoint-dir", str(cps), "--store", "sqlite"
            )
        )
        assert line == (
            f"error: {cps} holds json checkpoints (1 stage); omit --store to use them, or pass "
            "--fresh to start over with sqlite (nothing was changed)"
        )
        assert output.read_bytes() == written
        fresh = run_enrich(
            "--data-dir", str(tmp_path), "--checkpoint-dir", str(cps), "--store", "sqlite", "--fresh"
        )  # fmt: skip
        assert fresh.returncode == 0, fresh.stderr[-2000:]
        assert (cps / DATABASE_NAME).is_file() and not list(cps.glob("*.json"))
        assert sorted(json.loads(x)["url"] for x in output.read_text().splitlines()) == sorted(urls)
        again = run_enrich("--data-dir", str(tmp_path), "--checkpoint-dir", str(cps))
        assert again.returncode == 0, again.stderr[-2000:]
        assert "nothing to do, already completed" in again.stdout, again.stdout


def test_fresh_switch_removes_the_other_store_so_detection_stays_true(tmp_path: Path) -> None:
    """select_store only chooses: the switch it returns removes the other store's checkpoints
    when the start that goes ahead makes it."""
    from common.stores.factory import StoreMismatchError, select_store

    sqlite_dir = tmp_path / "from-sqlite"
    make_checkpoints(sqlite_dir, "sqlite", STAGES[2:])
    before = digest(sqlite_dir)
    choice = select_store("json", sqlite_dir, fresh=True, restarting=STAGES[2:])
    assert choice.kind == "json" and choice.switch is not None
    assert digest(sqlite_dir) == before
    choice.switch.make()
    assert not list(sqlite_dir.glob(f"{DATABASE_NAME}*"))
    assert select_store(None, sqlite_dir).kind == "json"

    json_dir = tmp_path / "from-json"
    make_checkpoints(json_dir, "json")
    with pytest.raises(StoreMismatchError, match="would also forget stage1_discovery"):
        select_store("sqlite", json_dir, fresh=True, restarting=STAGES[1:])
    assert {p.name for p in json_dir.glob("*.json")} >= {f"{s}.json" for s in STAGES}
    choice = select_store("sqlite", json_dir, fresh=True, restarting=STAGES)
    assert choice.kind == "sqlite" and choice.switch is not None
    assert {p.name for p in json_dir.glob("*.json")} >= {f"{s}.json" for s in STAGES}
    choice.switch.make()
    assert not list(json_dir.glob("*.json"))


def test_a_fresh_start_of_everything_forgets_stages_it_does_not_run(tmp_path: Path) -> None:
    from common.stores.factory import select_store

    cps = tmp_path / "cps"
    make_checkpoints(cps, "json", (*STAGES, "stage3_async_enrichment_retry"))
    choice = select_store("sqlite", cps, fresh=True, restarting=STAGES, everything=True)
    assert choice.kind == "sqlite" and choice.switch is not None
    choice.switch.make()
    assert not list(cps.glob("*.json"))


def test_an_unreadable_database_is_never_removed(tmp_path: Path) -> None:
    from common.stores.factory import StoreMismatchError, select_store

    cps = tmp_path / "cps"
    cps.mkdir()
    (cps / DATABASE_NAME).write_bytes(b"not a database" * 100)
    with pytest.raises(StoreMismatchError) as refused:
        select_store("json", cps, fresh=True, restarting=STAGES, everything=True)
    assert str(refused.value) == (
        f"{cps} holds a sqlite checkpoint database ({DATABASE_NAME}) that cannot be read; omit "
        "--store to see why, or move it aside to start over with json (nothing was changed)"
    )
    assert (cps / DATABASE_NAME).read_bytes() == b"not a database" * 100


@pytest.mark.parametrize(("held", "other"), [("json", "sqlite"), ("sqlite", "json")])
def test_a_fresh_switch_is_refused_while_a_live_process_writes_the_stage(
    tmp_path: Path, held: str, other: str
) -> None:
    """--fresh --store OTHER removes the held store's checkpoints only under every stage's
    writer lock: beside a live writer (another run of the stage) it is refused in one line
    naming the stage and the pid, and nothing is removed."""
    data_dir = tmp_path / "data"
    cps = tmp_path / "own"
    stage = STAGES[2]
    write_stage2(data_dir, ["http://127.0.0.1:1/a"])
    with live_writer(CHECKPOINT_WRITER, cps / f"{stage}.json", held) as writer:
        # SQLite's shared-memory index changes when the database is read: it is not data.
        before = {k: v for k, v in digest(tmp_path).items() if not k.endswith("-shm")}
        command = enrich_command(data_dir, "--checkpoint-dir", cps, "--store", other, "--fresh")
        line = one_error_line(run(*command))
        assert line == (
            f"error: stage {stage} is running (pid {writer.pid}); stop it first (nothing was "
            "changed)"
        )
        assert {k: v for k, v in digest(tmp_path).items() if not k.endswith("-shm")} == before
        assert release(writer) == 0
    # The writer saved its pause into the store it was writing, which is still the one held.
    from common.stores.factory import detect_store

    assert detect_store(cps) == held


@pytest.mark.parametrize(("held", "other"), [("json", "sqlite"), ("sqlite", "json")])
def test_a_fresh_switch_refused_by_a_live_writer_of_the_output_removes_nothing(
    tmp_path: Path, held: str, other: str
) -> None:
    """--fresh --store OTHER checks that no other process writes the stage's output before it
    removes the held store's checkpoints: the start that follows would be refused by that
    file's lock, and the switch used to have forgotten the stage by then."""
    data_dir, cps, stage = tmp_path / "data", tmp_path / "own", STAGES[2]
    write_stage2(data_dir, ["http://127.0.0.1:1/a"])
    output = data_dir / "processed/stage03/enrichment_output.jsonl"
    checkpoint = EnhancedCheckpoint(cps / f"{stage}.json", store=held)
    checkpoint.attach_output(output)
    checkpoint.start(stage, total_items=3)
    checkpoint.update(processed=1, successful=1, index=0, record={"url": "mine"})
    checkpoint.pause()
    checkpoint.close()
    # Another stage, in a checkpoint directory of its own, writes the same file.
    with live_writer(OUTPUT_WRITER, tmp_path / "other" / "A.json", output) as writer:
        before = {k: v for k, v in digest(tmp_path).items() if not k.endswith("-shm")}
        command = enrich_command(data_dir, "--checkpoint-dir", cps, "--store", other, "--fresh")
        line = one_error_line(run(*command))
        assert str(output) in line and f"process {writer.pid}" in line, line
        assert line.endswith("(nothing was changed)"), line
        assert {k: v for k, v in digest(tmp_path).items() if not k.endswith("-shm")} == before
        assert release(writer) == 0
    from common.stores.factory import detect_store

    assert detect_store(cps) == held
    resumed = EnhancedCheckpoint(cps / f"{stage}.json", store=held)
    assert resumed.status.value == "paused" and resumed.state.progress.processed_items == 1
    resumed.close()


@pytest.mark.parametrize(("held", "other"), [("json", "sqlite"), ("sqlite", "json")])
def test_the_engine_makes_the_switch_only_when_its_start_goes_ahead(
    tmp_path: Path, held: str, other: str
) -> None:
    """EnhancedCheckpoint(store_switch=) removes the other store's checkpoints in start(),
    after every guard (here the input validator) and under its own writer lock."""
    from common.errors import InputInvalidError
    from common.stores.factory import detect_store, select_store

    cps, stage = tmp_path / "cps", STAGES[1]
    make_checkpoints(cps, held, (stage,))
    data = tmp_path / "input.jsonl"
    data.write_text('{"url": "a"}\n')
    before = digest(cps)

    def rejected(path: Path) -> None:
        raise ValueError(f"{path}:1: not a record")

    for validator in (rejected, None):
        choice = select_store(other, cps, fresh=True, restarting=[stage])
        assert choice.switch is not None and digest(cps) == before
        checkpoint = EnhancedCheckpoint(
            cps / f"{stage}.json", store=choice.kind, store_switch=choice.switch
        )
        try:
            if validator is rejected:
                with pytest.raises(InputInvalidError, match="nothing was changed"):
                    checkpoint.start(stage, 1, data, fresh=True, input_validator=validator)
                assert digest(cps) == before
                continue
            assert checkpoint.start(stage, 1, data, fresh=True)
            checkpoint.complete()
        finally:
            checkpoint.close()
    assert detect_store(cps) == other  # the database went, or came
    if held == "json":
        assert not list(cps.glob("*.json"))
