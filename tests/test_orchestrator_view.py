"""The orchestrator's bar for one stage: what its detail column says, rendered by rich."""

from __future__ import annotations

import io

from rich.console import Console

from common.manager import StageInfo
from common.state import CheckpointState
from common.status import CheckpointStatus
from tools.orchestrator.stage_table import STAGES
from tools.orchestrator.view import ProgressView


def _bar(state: CheckpointState) -> str:
    output = io.StringIO()
    console = Console(file=output, width=100, force_terminal=False, color_system=None)
    view = ProgressView(console, STAGES, live=False)
    view.show(StageInfo(STAGES[2].name, "here", state, None, live=True))
    console.print(view.progress)
    return next(line for line in output.getvalue().splitlines() if STAGES[2].alias in line)


def _state(successful: int, failed: int, processed: int, total: int) -> CheckpointState:
    state = CheckpointState(stage=STAGES[2].name)
    state.status = CheckpointStatus.RUNNING
    progress = state.progress
    progress.total_items, progress.processed_items = total, processed
    progress.successful_items, progress.failed_items = successful, failed
    progress.active_seconds = 2.0
    return state


def test_a_stage_with_nothing_finished_shows_no_success_rate() -> None:
    bar = _bar(_state(0, 0, 0, 0))
    assert "% ok" not in bar, bar
    assert "running" in bar and "0/s" in bar, bar


def test_a_stage_with_items_finished_shows_its_success_rate() -> None:
    bar = _bar(_state(3, 1, 4, 10))
    assert "75% ok 2/s" in bar, bar
