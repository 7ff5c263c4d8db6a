"""Stage 3 on its own for tests: ``python -m enrich`` as a subprocess, and a stage-2 output for
it to read (shared by the enrich CLI tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO_ROOT", "run_enrich", "write_stage2"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_enrich(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m enrich --allowed-domain 127.0.0.1 ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "enrich", "--allowed-domain", "127.0.0.1", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # bounds a hang, not a speed
        check=False,
    )


def write_stage2(data_dir: Path, urls: list[str]) -> None:
    """Stage 2's output under ``data_dir``: one valid HTML page per URL, in order."""
    stage2 = data_dir / "processed/stage02/validation_output.jsonl"
    stage2.parent.mkdir(parents=True)
    stage2.write_text(
        "".join(
            json.dumps({"url": u, "ok": True, "content_type": "text/html"}) + "\n" for u in urls
        )
    )
