"""``scrapy crawl`` from the repository root: a mistyped spider is a usage error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_mistyped_spider_name_is_one_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "discovry"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "no spider named 'discovry'; this project has: discovery, validation" in result.stderr
