"""What a finished run of ``tests/_crash_child.py`` must have left: exactly a clean run's files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from common import CheckpointStatus, EnhancedCheckpoint
from tests import _crash_child as child


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"torn last line in {path}"
    return data.splitlines()


def check_exact_result(workdir: Path, items: int) -> None:
    """The files an uninterrupted run writes, exactly; nothing left over from the crashes."""
    checkpoint_dir, output, _ = child.paths(workdir)
    failed_path = output.with_name("output.failed.jsonl")
    good = {child.url(i) for i in range(items) if i % 5}
    bad = {child.url(i) for i in range(items) if not i % 5}

    records = [json.loads(line) for line in _lines(output)]
    urls = [r["url"] for r in records]
    assert len(urls) == len(set(urls)), "a record was written twice"
    assert set(urls) == good, f"missing {sorted(good - set(urls))[:5]}"
    assert all(r["n"] == int(r["url"].rsplit("/", 1)[1]) for r in records)
    failed = [json.loads(line)["url"] for line in _lines(failed_path)]
    assert len(failed) == len(set(failed)) and set(failed) == bad
    keys = [json.loads(line) for line in _lines(checkpoint_dir / f"{child.STAGE}.keys.jsonl")]
    assert len(keys) == len(set(keys)) and set(keys) == good | bad

    for name in (f"{child.STAGE}.json", f"{child.STAGE}.backup.json"):
        json.loads((checkpoint_dir / name).read_bytes())
    leftovers = [p.name for p in checkpoint_dir.iterdir() if ".tmp" in p.name or ".link" in p.name]
    assert leftovers == []
    for path in [*checkpoint_dir.glob("*.json*"), output, failed_path]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    checkpoint = EnhancedCheckpoint(checkpoint_dir / f"{child.STAGE}.json")
    try:
        assert checkpoint.status is CheckpointStatus.COMPLETED
        progress = checkpoint.state.progress
        assert (progress.processed_items, progress.failed_items) == (items, len(bad))
        assert progress.successful_items == len(good)
        assert checkpoint.state.completion.watermark == items
    finally:
        checkpoint.close()
