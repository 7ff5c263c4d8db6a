"""``docs/api.md`` works as written: each ```python block runs, alone, in an empty directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", API.read_text(encoding="utf-8"), re.M | re.S)


def test_the_page_documents_the_public_api() -> None:
    text = API.read_text(encoding="utf-8")
    for heading in ("EnhancedCheckpoint", "AsyncCheckpointTracker", "UnifiedCheckpointManager"):
        assert f"\n## {heading}\n" in text, heading
    for name in (
        "EnhancedCheckpoint",
        "AsyncCheckpointTracker",
        "UnifiedCheckpointManager",
        "CheckpointStatus",
        "CheckpointError",
        "InputChangedError",
        "CheckpointLockedError",
        "InvalidTransitionError",
    ):
        assert re.search(rf"`[^`\n]*\b{name}\b", text), name
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_example_runs_as_written(number: int, tmp_path: Path) -> None:
    script = tmp_path / f"example_{number}.py"
    script.write_text(BLOCKS[number], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"docs/api.md example {number + 1}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
