"""``set_position`` / ``checkpoint-manager set`` never make a stage write a record twice.

Found by a newcomer: moving a stage with output back (``set stage3 100`` on a completed
200-page enrichment) and running it again appended items 100-199 a second time (300 lines, 200
unique) while the run reported success; on the Scrapy validation stage the move did nothing but
rewrite the counts.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from common import CheckpointStatus, EnhancedCheckpoint

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _stage_with_output(folder: Path, done: range, total: int = 20) -> Path:
    """A paused stage whose output holds one record per item of ``done``."""
    output = folder / "out" / "records.jsonl"
    checkpoint = EnhancedCheckpoint(folder / "checkpoints" / "written.json")
    checkpoint.attach_output(output)
    checkpoint.start(total_items=total)
    for i in done:
        checkpoint.update(processed=1, successful=1, index=i, record={"url": f"https://x.test/{i}"})
    checkpoint.pause()
    checkpoint.close()
    return output


def test_moving_back_over_written_records_is_refused(tmp_path: Path) -> None:
    _stage_with_output(tmp_path, range(10))
    before = _digest(tmp_path)
    checkpoint = EnhancedCheckpoint(tmp_path / "checkpoints" / "written.json")
    with pytest.raises(ValueError, match=r"items 5 to 9 a second time"):
        checkpoint.set_position(5)
    assert checkpoint.state.completion.watermark == 10
    checkpoint.close()
    assert _digest(tmp_path) == before


def test_moving_forward_past_written_records_is_allowed(tmp_path: Path) -> None:
    output = _stage_with_output(tmp_path, range(10))
    checkpoint = EnhancedCheckpoint(tmp_path / "checkpoints" / "written.json")
    checkpoint.set_position(15)
    assert [i for i in range(20) if not checkpoint.should_skip(i)] == [15, 16, 17, 18, 19]
    checkpoint.attach_output(output)
    assert checkpoint.start() is True
    for i in range(15, 20):
        checkpoint.update(processed=1, successful=1, index=i, record={"url": f"https://x.test/{i}"})
    checkpoint.complete()
    checkpoint.close()
    urls = [json.loads(line)["url"] for line in output.read_text().splitlines()]
    assert len(urls) == len(set(urls)) == 15


def test_a_stage_resumed_by_key_has_no_position_to_move(tmp_path: Path) -> None:
    checkpoint = EnhancedCheckpoint(tmp_path / "keyed.json")
    checkpoint.start(total_items=3)
    for url in ("https://x.test/a", "https://x.test/b"):
        checkpoint.update(processed=1, successful=1, key=url)
    checkpoint.pause()
    with pytest.raises(ValueError, match="resumes by key"):
        checkpoint.set_position(1)
    assert checkpoint.status is CheckpointStatus.PAUSED
    checkpoint.close()


def test_the_cli_refuses_in_one_line_and_changes_nothing(tmp_path: Path) -> None:
    _stage_with_output(tmp_path, range(20))
    before = _digest(tmp_path)
    result = subprocess.run(
        [sys.executable, "tools/checkpoint_manager_cli.py", "--checkpoint-dir",
         str(tmp_path / "checkpoints"), "set", "written", "12"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "a second time" in lines[0] and "nothing was changed" in lines[0]
    assert lines[0].count("'written'") == 1, lines[0]  # the stage named once
    assert _digest(tmp_path) == before
