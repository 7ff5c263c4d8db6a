"""Proof by fault injection: SIGKILL at every step of a ``--fresh`` switch to the other store.

A stage's checkpoints are kept in one store (JSON files or the SQLite database), completed or
killed part-way; then the same stage is started with the other store and ``--fresh``
(:func:`common.stores.factory.select_store`'s switch, made by the start: the tracker's, as
``python -m enrich`` runs it, or the engine's, as a Scrapy crawl does). The run is killed after
each file of the old store's checkpoints is removed (``after_unlink``, every arrival), once
they are all gone (``after_store_switch``), and in the new store's first truncation and save.

Between the kill and the rerun, detection and ``checkpoint-manager list`` must tell the truth:
the old store's stage as it was while its record is there, nothing of it (no backup to restore
from, no journal no record names, no -wal without its database) once it is gone, never both
stores. Then the same command must finish with exactly an uninterrupted switch's result: every
record once in the outputs, and the directory holding the new store's files alone.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.stores.factory import detect_store
from common.stores.json_file import JsonFileStore
from common.stores.sqlite import DATABASE_NAME
from tests import _crash_child as child

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 60

#: The new store's first steps after the switch: the outputs cut for the fresh start, the
#: first record saved.
FIRST_WRITES = {
    "json": ("after_journal_truncate", "temp_open", "after_replace"),
    "sqlite": ("after_journal_truncate", "sqlite_before_commit", "sqlite_after_commit"),
}


def run_child(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return child.run(workdir, ITEMS, *args, env=env)


def listed(workdir: Path) -> str:
    """``checkpoint-manager list`` on the stage's directory (the store it holds, detected)."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.checkpoint_cli", "--checkpoint-dir", str(workdir / "checkpoints"), "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def stage_line(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.startswith(f"{child.STAGE} ")]
    return lines[0].rsplit(None, 1)[0] if lines else None  # without the time it was updated


def files(workdir: Path) -> set[str]:
    """The checkpoint directory's files but the lock files and snapshot history."""
    return {
        p.name for p in (workdir / "checkpoints").iterdir() if p.is_file() and p.suffix != ".lock"
    }


def old_store_present(workdir: Path, held: str) -> bool:
    """Whether the old store still holds the stage, and nothing of it is left over otherwise."""
    cps = workdir / "checkpoints"
    if held == "sqlite":
        present = (cps / DATABASE_NAME).exists()
        leftovers = {f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm"} & files(workdir)
    else:
        present = JsonFileStore(cps).list_stages() == [child.STAGE]
        leftovers = {n for n in files(workdir) if n.startswith(f"{child.STAGE}.")}
    assert present or not leftovers, f"the old store's {sorted(leftovers)} outlived its record"
    return present


def check_outputs(workdir: Path) -> None:
    _, output, _ = child.paths(workdir)
    good = {child.url(i) for i in range(ITEMS) if i % 5}
    bad = {child.url(i) for i in range(ITEMS) if not i % 5}
    for path, expected in ((output, good), (output.with_name("output.failed.jsonl"), bad)):
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"torn last line in {path}"
        urls = [json.loads(line)["url"] for line in data.splitlines()]
        assert len(urls) == len(set(urls)), f"a record was written twice in {path}"
        assert set(urls) == expected, f"records missing from {path}"


def prepare(template: Path, held: str, setup: str) -> None:
    """The old store's checkpoints: a completed stage, or one killed part-way (a SQLite
    database then keeps its -wal)."""
    template.mkdir()
    (template / "input.txt").write_text("the stage's input\n")
    env = None
    if setup == "killed":
        point = "after_replace" if held == "json" else "sqlite_after_commit"
        env = {"CHECKPOINT_CRASH_AT": point, "CHECKPOINT_CRASH_SKIP": "4"}
    result = run_child(template, "--store", held, env=env)
    assert result.returncode == (0 if setup == "completed" else -signal.SIGKILL), result.stderr
    assert detect_store(template / "checkpoints") == held


@pytest.mark.parametrize(
    ("held", "setup", "variant"),
    [
        ("json", "completed", "--tracker"),
        ("json", "killed", "--tracker"),
        ("json", "completed", "--engine"),
        ("sqlite", "completed", "--tracker"),
        ("sqlite", "killed", "--tracker"),
        ("sqlite", "killed", "--engine"),
    ],
)
def test_sigkill_during_a_fresh_store_switch_then_the_same_command_finishes_exactly(
    tmp_path: Path, held: str, setup: str, variant: str
) -> None:
    other = "sqlite" if held == "json" else "json"
    command = ("--store", other, "--fresh", *([variant] if variant == "--tracker" else []))
    template = tmp_path / "template"
    prepare(template, held, setup)
    before = stage_line(listed(template))
    assert before is not None

    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    result = run_child(reference, *command)
    assert result.returncode == 0, result.stderr
    check_outputs(reference)
    expected_files = files(reference)
    assert detect_store(reference / "checkpoints") == other

    points = [("after_unlink", skip) for skip in range(8)]
    points += [("after_store_switch", 0), *((p, 0) for p in FIRST_WRITES[other])]
    seen: list[str] = []
    every_file_removed = False
    for point, skip in points:
        if point == "after_unlink" and every_file_removed:
            continue
        workdir = tmp_path / f"{point}-{skip}"
        shutil.copytree(template, workdir)
        crashed = run_child(
            workdir,
            *command,
            env={"CHECKPOINT_CRASH_AT": point, "CHECKPOINT_CRASH_SKIP": str(skip)},
        )
        if point == "after_unlink" and crashed.returncode == 0:
            every_file_removed = True  # each removal of the old store's files was a point
            continue
        assert crashed.returncode == -signal.SIGKILL, (point, skip, crashed.stderr)
        seen.append(f"{point}-{skip}")

        # Between: the old store as it was while its record is there, or nothing of it.
        text = listed(workdir)
        assert "backup" not in text, text
        cps = workdir / "checkpoints"
        if old_store_present(workdir, held):
            assert detect_store(cps) == held, (point, skip)
            assert stage_line(text) == before, (point, skip, text)
        else:
            assert detect_store(cps) == other or not (cps / DATABASE_NAME).exists()
            if held == "json":
                assert not JsonFileStore(cps).list_stages()

        # The same command finishes: exactly an uninterrupted switch's result.
        rerun = run_child(workdir, *command)
        assert rerun.returncode == 0, (point, skip, rerun.stderr)
        assert "Traceback" not in rerun.stderr
        check_outputs(workdir)
        assert detect_store(cps) == other
        assert files(workdir) == expected_files, (point, skip)
        assert "completed  60/60" in listed(workdir)
    assert every_file_removed and len(seen) == len(points) - 8 + 3, seen
