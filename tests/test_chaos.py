"""``tools.bench.chaos`` small: the whole pipeline SIGKILLed at random moments, resumed each time.

The real thing (``python -m tools.orchestrator`` starting its own demo site, real SIGKILLs to
the orchestrator alone or to its whole process tree, restarts at once) on a small site: every
output (the three stages' and the failed sidecar) ends identical to an uninterrupted run's by URL,
with no torn line, no duplicate, no failed run and no hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench.chaos import Options, run_chaos

KILLS = 3


@pytest.mark.slow
def test_pipeline_killed_at_random_moments_ends_with_the_reference_outputs(
    tmp_path: Path,
) -> None:
    report = run_chaos(
        tmp_path, kills=KILLS, seed=11, options=Options(pages=30, site_seed=5, deadline=120)
    )
    summary = report.summary()
    assert len(report.kills) == KILLS, summary
    assert report.failed_runs == [] and report.hangs == 0, summary
    assert report.rounds, summary
    for diffs in report.rounds:
        # Every output compared, and the compared ones are not trivially empty.
        assert len(diffs) == 4, summary
        assert all(diff.clean for diff in diffs), summary
    assert all(
        count > 0 for name, count in report.reference_records.items() if "failed" not in name
    )
    assert report.ok
