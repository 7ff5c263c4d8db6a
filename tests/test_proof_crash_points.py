"""Proof by fault injection: SIGKILL at every named step of a save, an output commit and recovery.

For each point of :data:`common.io.faults.POINTS` a child stage (``tests/_crash_child.py``) is run
with ``CHECKPOINT_CRASH_AT`` set to it, so it SIGKILLs itself (``os.kill`` from the switch) at
that exact step, at more than one arrival. Some points need a situation first: uncommitted
records to cut (a kill right after a journal write), a damaged main file, or a fresh start over
earlier progress. Then the same command runs without the switch and must finish, and the
result must be exactly what an uninterrupted run writes: every successful item's record once
in the output, every failed item once in the sidecar, each key once, no torn line, no
temporary file left, the counts right, the checkpoint and its backup readable and private.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common import EnhancedCheckpoint
from common.io.faults import POINTS, RECOVERY_POINTS, SAVE_POINTS
from tests import _crash_child as child
from tests._proof_checks import check_exact_result

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 400


def run_child(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return child.run(workdir, ITEMS, *args, env=env)


def crash(workdir: Path, point: str, skip: int, *args: str) -> None:
    """Run the child with the crash switch; it must die by SIGKILL at ``point``."""
    result = run_child(
        workdir,
        *args,
        env={"CHECKPOINT_CRASH_AT": point, "CHECKPOINT_CRASH_SKIP": str(skip)},
    )
    assert result.returncode == -signal.SIGKILL, (
        f"{point} (skip {skip}) was not reached: exit {result.returncode}\n{result.stderr}"
    )


def damage_main(workdir: Path) -> None:
    main = child.paths(workdir)[0] / f"{child.STAGE}.json"
    scratch = main.with_name("scratch")
    scratch.write_bytes(b'{"stage": "crashy", "status": "run')  # a torn write, by hand
    scratch.chmod(0o600)
    os.replace(scratch, main)


@dataclass(frozen=True)
class Scenario:
    """How to reach ``point``: ``setup`` runs first, then kills at the given arrivals."""

    point: str
    skips: tuple[int, ...]
    args: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None
    final_args: tuple[str, ...] = field(default=())


def _partial(workdir: Path) -> None:
    crash(workdir, "after_replace", 12)


def _uncommitted(workdir: Path) -> None:
    crash(workdir, "after_journal_write", 9)


def _damaged(workdir: Path) -> None:
    crash(workdir, "after_replace", 12)
    damage_main(workdir)


SCENARIOS = [
    # Arrival 0 of the record steps is the very first save (no backup yet); 5 is mid-run.
    *(
        Scenario(point, (0, 5) if point in ("after_temp_write", "after_replace") else (5,))
        for point in SAVE_POINTS
        if point != "journal_open"
    ),
    Scenario("journal_open", (0, 2)),  # once per journal per process: output, failed, keys
    Scenario("after_dir_fsync", (3,), ("--tracker",)),
    Scenario("after_journal_write", (4,), ("--tracker",)),
    Scenario("lock_open", (0,)),
    Scenario("after_journal_truncate", (0,), setup=_uncommitted),
    Scenario("after_journal_truncate", (0,), ("--fresh",), _partial),
    Scenario("after_journal_truncate", (0,), ("--reset",), _partial),
    Scenario("after_journal_truncate", (0,), ("--tracker", "--fresh"), _partial),
    Scenario("after_damaged_aside", (0,), setup=_damaged),
    Scenario("after_reset_record", (0,), ("--fresh",), _partial),
    # Saves coalesced and deferred while updates continue: arrival 1 is the first save after
    # the start's, which the saver's timer (or the next due update) takes (review A.1 #9).
    Scenario("after_journal_write", (1,), ("--no-flush",)),
    Scenario("after_replace", (1,), ("--no-flush",)),
    Scenario("after_reset_record", (0,), ("--reset",), _partial),
]


def test_every_point_has_a_scenario() -> None:
    assert {s.point for s in SCENARIOS} == set(POINTS)
    assert set(RECOVERY_POINTS) <= set(POINTS)


@pytest.mark.parametrize(
    "scenario",
    SCENARIOS,
    ids=[
        f"{s.point}{'-' + '-'.join(a.strip('-') for a in s.args) if s.args else ''}"
        for s in SCENARIOS
    ],
)
def test_sigkill_at_the_point_then_the_same_command_finishes_exactly(
    tmp_path: Path, scenario: Scenario
) -> None:
    (tmp_path / "input.txt").write_text("the stage's input\n")
    if scenario.setup is not None:
        scenario.setup(tmp_path)
    checkpoint_dir, output, _input = child.paths(tmp_path)
    starts_over = "--fresh" in scenario.args or "--reset" in scenario.args
    committed, processed = b"", 0
    for skip in scenario.skips:
        crash(tmp_path, scenario.point, skip, *scenario.args)
        # After every kill, not just the last (review A.1 #15): what is on disk loads (the
        # old record or the new one, never the backup unless the main file was damaged on
        # purpose), counts never go backwards, and committed output is never rewritten.
        checkpoint = EnhancedCheckpoint(checkpoint_dir / f"{child.STAGE}.json")
        try:
            if scenario.setup is not _damaged:
                assert checkpoint.restored_from_backup is False
            now_processed = checkpoint.state.progress.processed_items
            length = checkpoint.state.journals.get("output", 0)
        finally:
            checkpoint.close()
        data = output.read_bytes()[:length] if output.exists() else b""
        assert len(data) == length, "committed output bytes are missing"
        if not starts_over:
            assert now_processed >= processed, "progress went backwards"
            assert data.startswith(committed), "committed output was rewritten"
        committed, processed = data, now_processed
    final_args = tuple(a for a in scenario.args if a == "--tracker")
    result = run_child(tmp_path, *final_args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    check_exact_result(tmp_path, ITEMS)
