"""The orchestrator's bar for one stage: what its detail column says, rendered by rich."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from common.manager import StageInfo
from common.state import CheckpointState
from common.status import CheckpointStatus
from tools.orchestrator.stage_table import STAGES
from tools.orchestrator.view import ProgressView, StageOutcome, summary_lines


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


def _enrichment_summary(tmp_path: Path, left_out: int, repeats: int) -> list[str]:
    """The summary's lines for a completed stage 3 of 5 pages whose input left out those."""
    spec = STAGES[2]
    (tmp_path / spec.output).parent.mkdir(parents=True)
    (tmp_path / spec.output).write_text("")
    state = _state(5, 0, 5, 5)
    state.metadata.update(input_left_out=left_out, input_repeats=repeats)
    outcome = StageOutcome(spec, StageInfo(spec.name, "here", state, None, live=False), ran=True)
    return summary_lines([outcome], tmp_path, demo=True)[1:-2]


def test_the_enrichment_summary_leaves_out_a_zero_count(tmp_path: Path) -> None:
    assert _enrichment_summary(tmp_path / "none", 0, 0) == []
    assert _enrichment_summary(tmp_path / "errors", 2, 0) == [
        "  5 pages of 7 validated URLs: 2 not HTML pages (HTTP errors, other types)"
    ]
    assert _enrichment_summary(tmp_path / "alias", 0, 1) == [
        "  5 pages of 6 validated URLs: 1 alias of a page above"
    ]
    assert _enrichment_summary(tmp_path / "both", 1, 2) == [
        "  5 pages of 8 validated URLs: 1 not an HTML page (HTTP errors, other types), "
        "2 aliases of pages above"
    ]
