"""What the orchestrator copies from a stage's log to a piped stderr, and what it labels as the
demo site's designed-in errors (Scrapy's own log lines, as a validation run on the demo site
wrote them)."""

from __future__ import annotations

import io

import pytest

from tools.orchestrator.stages import LogEcho

DEMO = "http://127.0.0.1:38223"
LOG = f"""\
2026-12-06 02:13:59 [scrapy.core.engine] INFO: Spider opened
2026-12-06 02:13:59 [scrapy.downloadermiddlewares.retry] ERROR: Gave up retrying <GET {DEMO}/apps/student-portal-3/> (failed 3 times): 500 Internal Server Error
2026-12-06 02:13:59 [scrapy.downloadermiddlewares.retry] ERROR: Gave up retrying <GET http://x/> (failed 3 times): DNS lookup failed: no results for hostname lookup: x.
2026-12-06 02:13:59 [scrapy.downloadermiddlewares.retry] ERROR: Gave up retrying <GET {DEMO}/p/1> (failed 3 times): Connection was refused by other side: 111: Connection refused.
2026-12-06 02:13:59 [scrapy.downloadermiddlewares.retry] ERROR: Gave up retrying <GET http://127.0.0.1:9/apps/a/> (failed 3 times): 500 Internal Server Error
2026-12-06 02:14:00 [common.checkpoint] WARNING: Stage stage2_validation completed before
"""
LABEL = "  [designed-in error of the demo site]"


def _echo(capsys: pytest.CaptureFixture[str], demo_origin: str | None) -> tuple[list[str], int]:
    echo = LogEcho(io.BytesIO(LOG.encode()), verbose=False, demo_origin=demo_origin)
    echo.pump(final=True)
    return capsys.readouterr().err.splitlines(), echo.designed_errors


def test_only_the_demo_sites_own_statuses_are_labelled_designed_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines, designed = _echo(capsys, DEMO)
    # Warnings and errors are copied, INFO is not.
    assert len(lines) == 5 and not any("Spider opened" in line for line in lines), lines
    labelled = [line for line in lines if line.endswith(LABEL)]
    # The demo site's 500 is designed in; a DNS failure of another host, a refused connection
    # to the demo site and another site's 500 are real errors and must not be explained away.
    assert labelled == [lines[0]] and "student-portal-3" in lines[0], lines
    assert designed == 1


def test_nothing_is_labelled_without_the_demo_site(capsys: pytest.CaptureFixture[str]) -> None:
    lines, designed = _echo(capsys, None)
    assert len(lines) == 5 and not any(line.endswith(LABEL) for line in lines), lines
    assert designed == 0
